// Package plp benchmarks prom-label-proxy's PromQL enforcer, unmodified, on
// bench/queries.txt. It is its own module so that prom-label-proxy builds
// against the Prometheus version it requires (its latest release does not
// compile against the one prom-tenant uses); make bench runs both modules in
// one run and reports the ratios.
package plp

import (
	"bufio"
	"os"
	"strings"
	"testing"

	"github.com/prometheus-community/prom-label-proxy/injectproxy"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
)

type namedQuery struct{ name, query string }

func loadQueries(tb testing.TB) []namedQuery {
	tb.Helper()
	f, err := os.Open("../queries.txt")
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	var qs []namedQuery
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		if line := sc.Text(); line != "" && !strings.HasPrefix(line, "#") {
			name, q, ok := strings.Cut(line, "\t")
			if !ok {
				tb.Fatalf("queries.txt: no tab in %q", line)
			}
			qs = append(qs, namedQuery{name, q})
		}
	}
	return qs
}

// enforcer is prom-label-proxy's enforcer as its handler builds it with the
// default flags: -label namespace, value t, -error-on-replace=false.
func enforcer() *injectproxy.PromQLEnforcer {
	return injectproxy.NewPromQLEnforcer(false, &labels.Matcher{Type: labels.MatchEqual, Name: "namespace", Value: "t"})
}

// enforce is what PromQLEnforcer.Enforce does per query: parse, EnforceNode,
// print; the same three steps rewrite.Enforcer.EnforceQuery does.
func enforce(e *injectproxy.PromQLEnforcer, q string) (string, error) {
	expr, err := parser.ParseExpr(q)
	if err != nil {
		return "", err
	}
	if err := e.EnforceNode(expr); err != nil {
		return "", err
	}
	return expr.String(), nil
}

func BenchmarkEnforce(b *testing.B) {
	e := enforcer()
	for _, q := range loadQueries(b) {
		b.Run(q.name+"/prom-label-proxy", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := enforce(e, q.query); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestEverySelectorConstrained: what the benchmark times is a real enforcement.
func TestEverySelectorConstrained(t *testing.T) {
	e := enforcer()
	for _, q := range loadQueries(t) {
		out, err := enforce(e, q.query)
		if err != nil {
			t.Fatalf("%s: %v", q.name, err)
		}
		expr, err := parser.ParseExpr(out)
		if err != nil {
			t.Fatal(err)
		}
		for _, sel := range parser.ExtractSelectors(expr) {
			ok := false
			for _, m := range sel {
				ok = ok || (m.Name == "namespace" && m.Type == labels.MatchEqual && m.Value == "t")
			}
			if !ok {
				t.Errorf("%s: selector %v lacks namespace=\"t\"\n%s", q.name, sel, out)
			}
		}
	}
}
