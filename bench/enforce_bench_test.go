// Package bench benchmarks rewrite.Enforcer on the queries in queries.txt.
// bench/plp runs prom-label-proxy's enforcer on the same queries, in its own
// module, so that each is built against the Prometheus it requires.
package bench

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"

	"github.com/prom-tenant/caddy-prom-tenant/rewrite"
)

type namedQuery struct{ name, query string }

// loadQueries reads name<TAB>query lines, in order.
func loadQueries(tb testing.TB) []namedQuery {
	tb.Helper()
	f, err := os.Open("queries.txt")
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

func policy(tb testing.TB, sels ...string) *rewrite.Policy {
	tb.Helper()
	var ss []rewrite.Selector
	for _, s := range sels {
		ms, err := parser.NewParser(parser.Options{}).ParseMetricSelector(s)
		if err != nil {
			tb.Fatalf("selector %q: %v", s, err)
		}
		ss = append(ss, ms)
	}
	p, err := rewrite.NewPolicy(ss)
	if err != nil {
		tb.Fatalf("NewPolicy: %v", err)
	}
	return p
}

// fiftyPolicy is fiftyPatterns from rewrite/bench_test.go: 50 metric-name
// patterns with namespace isolation, as a large MetricAccess compiles to.
func fiftyPolicy(tb testing.TB) *rewrite.Policy {
	var sels []string
	for i := range 48 {
		sels = append(sels, fmt.Sprintf(`{__name__="app_metric_%d_total",namespace="t"}`, i))
	}
	return policy(tb, append(sels, `{__name__=~"http_.*",namespace="t"}`, `{__name__="up",namespace="t"}`)...)
}

// BenchmarkEnforce measures, per query, the whole text-to-text work: parse,
// rewrite every selector, print. Enforcer and policies are built once.
//
//   - ours-single: rewrite.Enforcer.EnforceQuery with the policy {namespace="t"},
//     what prom-label-proxy's enforcer (bench/plp) injects;
//   - ours-fifty: EnforceQuery with the 50-pattern policy.
func BenchmarkEnforce(b *testing.B) {
	ours := rewrite.NewEnforcer(parser.Options{})
	policies := []struct {
		name string
		pol  *rewrite.Policy
	}{{"ours-single", policy(b, `{namespace="t"}`)}, {"ours-fifty", fiftyPolicy(b)}}
	for _, q := range loadQueries(b) {
		for _, impl := range policies {
			b.Run(q.name+"/"+impl.name, func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					if _, err := ours.EnforceQuery(context.Background(), impl.pol, q.query); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// TestEverySelectorConstrained checks what the benchmarks time: every
// selector of every rewritten query carries namespace="t" (bench/plp checks
// the same of prom-label-proxy's), or, for the 50-pattern policy, matches
// nothing (a metric outside the policy).
func TestEverySelectorConstrained(t *testing.T) {
	ours := rewrite.NewEnforcer(parser.Options{})
	for _, pol := range []*rewrite.Policy{policy(t, `{namespace="t"}`), fiftyPolicy(t)} {
		for _, q := range loadQueries(t) {
			out, err := ours.EnforceQuery(context.Background(), pol, q.query)
			if err != nil {
				t.Fatalf("%s: %v", q.name, err)
			}
			expr, err := parser.NewParser(parser.Options{}).ParseExpr(out)
			if err != nil {
				t.Fatalf("%s: %q does not parse: %v", q.name, out, err)
			}
			for _, sel := range parser.ExtractSelectors(expr) {
				ok := false
				for _, m := range sel {
					ok = ok || (m.Name == "namespace" && m.Matches("t") && !m.Matches("u")) ||
						(m.Name == labels.MetricName && m.Type == labels.MatchNotRegexp && m.Value == "(?s:.*)")
				}
				if !ok {
					t.Errorf("policy %s, %s: selector %v is not constrained to namespace t\n%s", pol, q.name, sel, out)
				}
			}
		}
	}
}
