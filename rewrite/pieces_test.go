package rewrite

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
)

// TestDisjointPieces: for random policies and user selectors over a few
// labels, the pieces a union is written with are pairwise disjoint, each lies
// inside one policy branch, and together they are exactly the user's selector
// under the policy, over a universe of label sets.
func TestDisjointPieces(t *testing.T) {
	pool := []string{
		`__name__="a"`, `__name__="b"`, `__name__=~"a|c"`, `__name__!="a"`, `__name__=~"b.*"`,
		`job="x"`, `job=~"x|y"`, `job!="y"`, `job=""`, `job=~".+"`,
		`ns="t"`, `ns!~"t|u"`, `ns=~"u.*"`, `ns=~"t|"`,
	}
	sel := func(r *rand.Rand) string {
		n := 1 + r.IntN(3)
		parts := make([]string, n)
		for i := range parts {
			parts[i] = pool[r.IntN(len(pool))]
		}
		return "{" + strings.Join(parts, ",") + "}"
	}
	r := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 300; i++ {
		var branches []string
		for range 2 + r.IntN(4) {
			branches = append(branches, sel(r))
		}
		user := sel(r)
		p, err := NewPolicy(parseSelectors(t, branches))
		if err != nil {
			continue // every branch contradictory
		}
		um := mustSelector(t, user)
		if !hasNonEmpty(um) {
			continue // not a valid query selector
		}
		rw := &rewriter{ctx: context.Background(), p: p, budget: 1000, limit: 1000, maxSize: 1 << 30}
		pieces, err := rw.pieces(&parser.VectorSelector{LabelMatchers: um}, um)
		if err != nil {
			t.Fatalf("policy %s, selector %s: %v", p, user, err)
		}
		var parts [][]*labels.Matcher
		for _, pc := range pieces {
			parts = append(parts, pc.selector(true))
		}
		sameSeries(t, p, um, parts, "pieces of "+user)
		all := append(parts, um)
		for _, b := range p.Branches() {
			all = append(all, b)
		}
		for _, ls := range universe(t, all...) {
			n := 0
			for _, ms := range parts {
				if matchAll(ms, ls) {
					n++
				}
			}
			if n > 1 {
				t.Fatalf("policy %s, selector %s: series %s is in %d pieces %v", p, user, ls, n, parts)
			}
		}
	}
}

// TestUnionLimit: the selectors unions write count against the limit, over
// the whole query, and the refusal names the option that raises it.
func TestUnionLimit(t *testing.T) {
	p := newTestPolicy(t, `{__name__="http_requests_total"}`, `{job="my-app"}`)
	e := NewEnforcer(parser.Options{}).WithLimits(Limits{MaxUnionSelectors: 3})
	if _, err := e.EnforceQuery(context.Background(), p, `count({instance="i1"})`); err != nil {
		t.Fatalf("a union of 2 under a limit of 3: %v", err)
	}
	_, err := e.EnforceQuery(context.Background(), p, `count({instance="i1"}) + count({instance="i2"})`)
	var le *UnionLimitError
	if !errors.Is(err, ErrUnionTooLarge) || !errors.As(err, &le) || le.Limit != 3 {
		t.Fatalf("two unions of 2 under a limit of 3: %v, want a *UnionLimitError", err)
	}
	if !strings.Contains(err.Error(), "max_union_selectors") || !strings.Contains(err.Error(), `{instance="i2"}`) {
		t.Errorf("error %q names neither the option nor the selector", err)
	}
	// Selectors that reduce to one branch cost nothing.
	if _, err := e.EnforceQuery(context.Background(), p, `up + up + up + http_requests_total + count({instance="i1"})`); err != nil {
		t.Fatalf("reducible selectors counted against the limit: %v", err)
	}
}

func parseSelectors(t *testing.T, ss []string) []Selector {
	var out []Selector
	for _, s := range ss {
		out = append(out, mustSelector(t, s))
	}
	return out
}

func hasNonEmpty(ms []*labels.Matcher) bool {
	for _, m := range ms {
		if !m.Matches("") {
			return true
		}
	}
	return false
}

// TestEnforceExemplarQuery: the exemplar query is the union of the query's
// selectors under the policy, each branch once, parseable.
func TestEnforceExemplarQuery(t *testing.T) {
	p := newTestPolicy(t, `{__name__="http_requests_total"}`, `{job="my-app"}`)
	for _, tc := range []struct{ query, want string }{
		{`up`, `{__name__="up",job="my-app"}`},
		{`histogram_quantile(0.9, sum by (le) (rate({instance="i1"}[5m])))`,
			`{__name__="http_requests_total",instance="i1"} or {instance="i1",job="my-app"}`},
		{`{instance="i1"}[5m]`, `{__name__="http_requests_total",instance="i1"} or {instance="i1",job="my-app"}`},
		{`up / db_password_len{job="other"}`, `{__name__="up",job="my-app"}`},
		{`1 + 1`, nothing},
		{`db_password_len{job="other"}`, nothing},
	} {
		got, err := stdEnforcer.EnforceExemplarQuery(context.Background(), p, tc.query)
		if err != nil || got != tc.want {
			t.Errorf("EnforceExemplarQuery(%q) = %q, %v; want %q", tc.query, got, err, tc.want)
			continue
		}
		expr, err := stdEnforcer.parser.ParseExpr(got)
		if err != nil {
			t.Fatalf("%q does not parse: %v", got, err)
		}
		var outs [][]*labels.Matcher
		for _, ms := range parser.ExtractSelectors(expr) {
			outs = append(outs, ms)
		}
		users := parser.ExtractSelectors(mustExpr(t, stdEnforcer, tc.query))
		for _, ls := range universe(t, append(append([][]*labels.Matcher{}, outs...), users...)...) {
			want, got := false, false
			for _, ms := range users {
				want = want || (matchAll(ms, ls) && p.Matches(ls))
			}
			for _, ms := range outs {
				got = got || matchAll(ms, ls)
			}
			if got != want {
				t.Errorf("exemplar query for %q: series %s selected=%v, want %v", tc.query, ls, got, want)
			}
		}
	}
}

// TestDisjointStopsAtTheBudget: pieces that multiply as branches are
// subtracted are refused once over the budget, before they are all built.
func TestDisjointStopsAtTheBudget(t *testing.T) {
	// Every branch constrains three labels of its own, so each subtraction
	// splits every piece in three.
	var sels []string
	for i := range 12 {
		sels = append(sels, fmt.Sprintf(`{a%d="x",b%d="x",c%d="x"}`, i, i, i))
	}
	p := newTestPolicy(t, sels...)
	e := NewEnforcer(parser.Options{})
	_, err := e.EnforceQuery(context.Background(), p, `up`)
	var le *UnionLimitError
	if !errors.As(err, &le) || le.Limit != DefaultLimits.MaxUnionSelectors {
		t.Fatalf("EnforceQuery = %v, want a *UnionLimitError at the default limit", err)
	}
	if _, err := disjoint(context.Background(), p.conj, 100); !errors.Is(err, errTooManyPieces) {
		t.Fatalf("disjoint with a limit of 100: %v, want errTooManyPieces", err)
	}
}

// TestSizeEstimateIsALowerBound: the size the rewriter estimates as it goes
// never exceeds the printed query's, so the early refusal never refuses a
// query whose rewrite would fit.
func TestSizeEstimateIsALowerBound(t *testing.T) {
	e := NewEnforcer(parser.Options{})
	for _, pc := range oraclePolicies {
		p := newTestPolicy(t, pc.selectors...)
		for _, q := range oracleCorpus() {
			expr, err := e.parser.ParseExpr(q)
			if err != nil {
				t.Fatal(err)
			}
			r := e.newRewriter(context.Background(), p)
			if expr, err = r.enforce(expr); err != nil {
				continue // a documented refusal
			}
			if out := expr.String(); r.size > len(out) {
				t.Errorf("policy %s, query %s: estimated %d bytes, printed %d: %s", p, q, r.size, len(out), out)
			}
		}
	}
}

// TestGrowthRefusedBeforePrinting: a query whose every selector grows by a
// large policy is refused once the estimate passes the size limit, not after
// the whole query is built and printed; and a policy of many selectors
// lowers the match[] limit, so that match[] × policy selectors stays bounded.
func TestGrowthRefusedBeforePrinting(t *testing.T) {
	var sels []string
	for i := range 1024 {
		sels = append(sels, fmt.Sprintf(`{__name__="metric_with_a_long_name_%d"}`, i))
	}
	p := newTestPolicy(t, sels...)
	e := NewEnforcer(parser.Options{})
	var balanced func(n int) string // a sum of n selectors, nested in halves
	balanced = func(n int) string {
		if n == 1 {
			return `{x=~".+"}`
		}
		return "(" + balanced(n/2) + " + " + balanced(n-n/2) + ")"
	}
	q := balanced(2000)
	_, err := e.EnforceQuery(context.Background(), p, q)
	var le *LimitError
	if !errors.As(err, &le) || le.Limit != LimitRewrittenSize {
		t.Fatalf("EnforceQuery = %v, want a rewritten-size refusal", err)
	}
	if le.Got > 2*DefaultLimits.MaxRewrittenSize {
		t.Errorf("refused at an estimated %d bytes: it went on long past the limit of %d", le.Got, DefaultLimits.MaxRewrittenSize)
	}
	// Branches that differ in two labels do not merge.
	sels = sels[:0]
	for i := range 1024 {
		sels = append(sels, fmt.Sprintf(`{__name__="m%d",job="j%d"}`, i, i))
	}
	if p = newTestPolicy(t, sels...); len(p.conj) != 1024 {
		t.Fatalf("policy of %d selectors, want 1024", len(p.conj))
	}
	match := make([]string, 1000)
	for i := range match {
		match[i] = fmt.Sprintf(`{job="j%d"}`, i)
	}
	_, err = e.EnforceMatchers(context.Background(), p, match)
	if !errors.As(err, &le) || le.Limit != LimitMatchers || le.Max != 1000*matchProduct/1024 {
		t.Fatalf("1000 match[] under 1024 policy selectors: %v, want a match[] limit of %d", err, 1000*matchProduct/1024)
	}
	// Under the lower bound but over once printed: refused after printing,
	// with the exact size.
	_, err = e.WithLimits(Limits{MaxRewrittenSize: 21}).EnforceQuery(context.Background(), newTestPolicy(t, `{namespace="team-a"}`), `up`)
	if !errors.As(err, &le) || le.AtLeast || le.Got != len(`up{namespace="team-a"}`) {
		t.Fatalf("EnforceQuery = %v, want the exact size of the printed query", err)
	}
}
