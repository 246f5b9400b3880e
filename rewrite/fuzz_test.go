package rewrite

import (
	"context"
	"errors"
	"github.com/prometheus/prometheus/model/labels"
	"strings"
	"testing"

	"github.com/prometheus/prometheus/promql/parser"
)

// FuzzEnforceQuery checks the safety invariant on arbitrary input: the
// rewriter either refuses with a typed error, or returns a query that parses,
// is unchanged by enforcing it again (unless a union was written), and in
// which every selector lies inside the policy (or matches nothing).
func FuzzEnforceQuery(f *testing.F) {
	for _, q := range benchQueries {
		f.Add(q)
	}
	for _, q := range []string{
		`up`, `{namespace="t"}`, `{__name__=~".+"}`, `absent(up{job="x"})`, `absent_over_time(nope[5m])`,
		`label_replace(db_password_len, "__name__", "up", "", "")`, `up * 0 + scalar(db_password_len)`,
		`sum(up) and on() (db_password_len > 40)`, `max_over_time(rate(up[1m] @ 50)[10m:1m] offset 5m @ 100)`,
		`{__name__=~"http_.*|up",job!~"a|b",namespace=~"t|u"}`, `count_values("v", up{job=""})`,
		`http_requests_total{code=~"5..",namespace!="t"}`, `-{job=~"api"} offset -5m`, `vector(1) + on() group_left up`,
	} {
		f.Add(q)
	}
	e := NewEnforcer(parser.Options{EnableExperimentalFunctions: true})
	policies := []*Policy{
		newTestPolicy(f, `{__name__="http_requests_total",namespace="t"}`, `{job="api",namespace="t"}`),
		newTestPolicy(f, `{__name__=~"http_.*",namespace="t"}`, `{__name__="up",namespace="t"}`),
		newTestPolicy(f, `{namespace="t"}`),
		newTestPolicy(f, `{namespace="t",job="api"}`, `{__name__="up"}`, `{job="web",code="500"}`,
			`{__name__=~"http_.*",namespace="u"}`, `{__name__="x",__prom_tenant_part__=~".+"}`),
	}
	f.Fuzz(func(t *testing.T, query string) {
		for _, p := range policies {
			out, err := e.EnforceQuery(context.Background(), p, query)
			if err != nil {
				if !errors.Is(err, ErrParse) && !errors.Is(err, ErrIrreducibleUnion) && !errors.Is(err, ErrUnsupported) && !errors.Is(err, ErrUnionTooLarge) && !errors.Is(err, ErrLimit) {
					t.Fatalf("EnforceQuery(%q): untyped error %v", query, err)
				}
				continue
			}
			expr, err := e.parser.ParseExpr(out)
			if err != nil {
				t.Fatalf("EnforceQuery(%q) = %q, which does not parse: %v", query, out, err)
			}
			if printed := expr.String(); printed != out {
				t.Fatalf("EnforceQuery(%q) = %q, which parses to a different tree, printed %q", query, out, printed)
			}
			parser.Inspect(expr, func(n parser.Node, _ []parser.Node) error {
				vs, ok := n.(*parser.VectorSelector)
				if !ok {
					return nil
				}
				c, ok := newConjunction(vs.LabelMatchers)
				if !ok {
					return nil // matches nothing
				}
				// Inside the policy: nothing of it is left once every
				// branch is subtracted (minus is exact; a merge of branches
				// lies inside their union, not inside one of them).
				rest := []conjunction{c}
				for _, b := range p.conj {
					rest = minus(rest, b)
				}
				if len(rest) == 0 {
					return nil
				}
				// minus may keep a piece it cannot prove empty (a regex
				// alternation less each of its alternatives): then check
				// the selector on every label set its literals make.
				// The policy does not look at labels no branch names, so the
				// selector without its matchers on those is a wider selector
				// with a smaller universe: inside the policy, it proves the
				// selector inside too.
				named := map[string]bool{}
				for _, b := range p.Branches() {
					for _, m := range b {
						named[m.Name] = true
					}
				}
				var onNamed []*labels.Matcher
				for _, m := range vs.LabelMatchers {
					if named[m.Name] {
						onNamed = append(onNamed, m)
					}
				}
				for _, sel := range [][]*labels.Matcher{vs.LabelMatchers, onNamed} {
					sels := [][]*labels.Matcher{sel}
					for _, b := range p.Branches() {
						sels = append(sels, b)
					}
					if u, ok := smallUniverse(sels...); ok {
						inside := true
						for _, ls := range u {
							inside = inside && (!matchAll(sel, ls) || p.Matches(ls))
						}
						if inside {
							return nil
						}
					}
				}
				t.Fatalf("EnforceQuery(%q) = %q: selector %s is not inside the policy %s", query, out, vs, p)
				return nil
			})
			// Without a union, the output is a fixed point. A union's parts
			// may overlap several branches again (a part merged from two
			// branches), so enforcing it again may split them further:
			// still exact (FuzzOracle checks answers), not the same text.
			again, err := e.EnforceQuery(context.Background(), p, out)
			switch {
			case err != nil && !errors.Is(err, ErrLimit) && !errors.Is(err, ErrUnionTooLarge):
				t.Fatalf("enforcing %q again: %v", out, err)
			case !strings.Contains(out, UnionPartLabel) && again != out:
				t.Fatalf("enforcing %q again gave %q", out, again)
			}
		}
	})
}
