package rewrite

import (
	"errors"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/prometheus/prometheus/promql/parser"
)

// treeHeight is the height of a syntax tree as Depth defines it, duration
// expressions included.
func treeHeight(n parser.Node) int {
	h := func(ns ...parser.Node) int {
		m := 0
		for _, c := range ns {
			if c != nil && !isNilNode(c) {
				m = max(m, treeHeight(c))
			}
		}
		return m
	}
	switch n := n.(type) {
	case *parser.VectorSelector:
		return 1 + h(n.OriginalOffsetExpr)
	case *parser.MatrixSelector:
		return 1 + h(n.VectorSelector, n.RangeExpr)
	case *parser.SubqueryExpr:
		return 1 + h(n.Expr, n.RangeExpr, n.StepExpr, n.OriginalOffsetExpr)
	case *parser.Call:
		var args []parser.Node
		for _, a := range n.Args {
			args = append(args, a)
		}
		return 1 + h(args...)
	case *parser.AggregateExpr:
		return 1 + h(n.Expr, n.Param)
	case *parser.BinaryExpr:
		return 1 + h(n.LHS, n.RHS)
	case *parser.ParenExpr:
		return 1 + h(n.Expr)
	case *parser.UnaryExpr:
		return 1 + h(n.Expr)
	case *parser.StepInvariantExpr:
		return 1 + h(n.Expr)
	case *parser.DurationExpr:
		return 1 + h(n.LHS, n.RHS)
	case *parser.NumberLiteral, *parser.StringLiteral:
		return 1
	}
	return 1
}

// isNilNode reports a typed nil inside an interface, as partial trees hold.
func isNilNode(n parser.Node) bool {
	switch n := n.(type) {
	case *parser.DurationExpr:
		return n == nil
	case *parser.VectorSelector:
		return n == nil
	case parser.Expr:
		return n == nil
	}
	return false
}

func hasDurationExpr(n parser.Node) bool {
	found := false
	var walk func(parser.Node)
	walk = func(n parser.Node) {
		if n == nil || isNilNode(n) || found {
			return
		}
		switch n := n.(type) {
		case *parser.DurationExpr:
			found = true
		case *parser.VectorSelector:
			if n.OriginalOffsetExpr != nil {
				found = true
			}
		case *parser.MatrixSelector:
			if n.RangeExpr != nil {
				found = true
			}
			walk(n.VectorSelector)
		case *parser.SubqueryExpr:
			if n.RangeExpr != nil || n.StepExpr != nil || n.OriginalOffsetExpr != nil {
				found = true
			}
			walk(n.Expr)
		default:
			for c := range parser.ChildrenIter(n) {
				walk(c)
			}
		}
	}
	walk(n)
	return found
}

// checkDepth asserts the pre-scan's two promises on one query: it is never
// below the height of a tree the parser builds (so it never lets through
// what the parser would spend quadratic time on), and for a query the parser
// accepts it is exactly the height (so it never refuses a query under the
// cap that Prometheus accepts). Duration arithmetic is counted by its tokens,
// an upper bound.
func checkDepth(t *testing.T, p parser.Parser, q string) {
	t.Helper()
	d := Depth(q)
	if tb := tokenBound(q); d > tb {
		// Limits.checkQuery skips the scan for queries whose token bound
		// is under the cap.
		t.Fatalf("Depth(%q) = %d, more than its token bound %d", q, d, tb)
	}
	if n := lexedTokens(q); n > tokenBound(q) {
		t.Fatalf("%q has %d tokens, more than its token bound %d", q, n, tokenBound(q))
	}
	expr, err := p.ParseExpr(q)
	if expr == nil || isNilNode(expr) {
		return
	}
	h := treeHeight(expr)
	if d < h {
		t.Fatalf("Depth(%q) = %d, below the parsed tree's height %d (err %v)", q, d, h, err)
	}
	if err == nil && d != h && !hasDurationExpr(expr) {
		t.Fatalf("Depth(%q) = %d, want the tree's height %d", q, d, h)
	}
}

func TestDepth(t *testing.T) {
	for _, tc := range []struct {
		q    string
		want int
	}{
		{`up`, 1},
		{`-up`, 2},
		{`--1`, 1},
		{`-(1)`, 3},
		{`-1^2`, 3},
		{`-1*2`, 2},
		{`(up)`, 2},
		{`a + b * c`, 3},
		{`a * b + c`, 3},
		{`a ^ b ^ c`, 3},
		{`a - b - c - d`, 4},
		{`a or b and c unless d`, 4},
		{`sum by (job) (rate(http_requests_total{code=~"5.."}[5m]))`, 4},
		{`sum(rate(x[5m])) without (instance)`, 4},
		{`topk(5, up)`, 2},
		{`count_values("v", up)`, 2},
		{`time()`, 1},
		{`max_over_time(rate(up[1m] @ 50)[10m:1m] offset 5m @ start())`, 5},
		{`a + on(x) group_left(y) b`, 2},
		{`a > bool b`, 2},
		{`up{a="((((((("} # ((((((`, 1},
		{"up{a=`[[[[`} + 'x'", 2},
		{strings.Repeat("-", 1000) + "up", 1001},
		{strings.Repeat("(", 1000) + "up" + strings.Repeat(")", 1000), 1001},
		{strings.Repeat("up+", 1000) + "up", 1001},
		{strings.Repeat("abs(", 500) + "up" + strings.Repeat(")", 500), 501},
		{strings.Repeat("2^", 100) + "2", 101},
	} {
		if got := Depth(tc.q); got != tc.want {
			t.Errorf("Depth(%.60q) = %d, want %d", tc.q, got, tc.want)
		}
		checkDepth(t, parser.NewParser(parser.Options{EnableExperimentalFunctions: true}), tc.q)
	}
}

// TestDepthProperty checks the pre-scan against the parser on every query
// of the oracle corpus, the fuzz seeds, and random compositions of them.
func TestDepthProperty(t *testing.T) {
	p := parser.NewParser(parser.Options{EnableExperimentalFunctions: true})
	corpus := append(oracleCorpus(), depthSeeds...)
	for _, q := range benchQueries {
		corpus = append(corpus, q)
	}
	for _, q := range corpus {
		checkDepth(t, p, q)
	}
	r := rand.New(rand.NewPCG(1, 2))
	for range 20000 {
		checkDepth(t, p, randomQuery(r, corpus, 4))
	}
}

// depthSeeds exercise the corners of the grammar the pre-scan models.
var depthSeeds = []string{
	`x offset 1m + 2m`, `x offset -1m ^ 2`, `x[5m+1m]`, `x[5m:1m] offset (1m)`, `up @ -5`, `up @ end()`,
	`sum without () (up)`, `sum by (a,) (up)`, `-sum(up)`, `- - -up[5m]`, `(up)[5m:]`, `-up[5m:] ^ 2`,
	`a * on() group_right b ^ -c`, `a atan2 b`, `a </ b`, `sum + 1`, `and + or`, `offset`, `step()`,
	`1 + step()`, `min_of(1, 2)`, `{__name__="a"} / ignoring(b) c`, `"s"`, `5m`, `-5m * 2`, `inf`, `-nan`,
	`label_replace(up, "a", "$1", "b", "(.*)")`, `histogram_quantile(0.9, sum by (le) (rate(x_bucket[5m])))`,
	`up anchored`, `rate(up[5m] smoothed)`, `a + fill(0) b`, `a + fill_left(-1) fill_right(2) b`,
	`up{`, `up)`, `(up`, `sum(`, `up[5m`, `a +`, `-`, `()`, `f(,)`, `up offset`, `up @`,
	`# only a comment`, "up # (((\n + 1", `{"up"}`, `{"a.b"="c"}`,
}

// randomQuery composes corpus entries with operators, parentheses, calls
// and modifiers, up to depth levels.
func randomQuery(r *rand.Rand, corpus []string, depth int) string {
	if depth == 0 || r.IntN(3) == 0 {
		return corpus[r.IntN(len(corpus))]
	}
	sub := func() string { return randomQuery(r, corpus, depth-1) }
	ops := []string{"+", "-", "*", "/", "%", "^", "==", "!=", ">", "<", ">=", "<=", "and", "or", "unless", "atan2", "> bool"}
	switch r.IntN(9) {
	case 0:
		return sub() + " " + ops[r.IntN(len(ops))] + " " + sub()
	case 1:
		return "(" + sub() + ")"
	case 2:
		return strings.Repeat("-", r.IntN(3)+1) + sub()
	case 3:
		return "abs(" + sub() + ")"
	case 4:
		return "sum by (job) (" + sub() + ")"
	case 5:
		return "max_over_time((" + sub() + ")[5m:1m])"
	case 6:
		return sub() + " * on(job) group_left " + sub()
	case 7:
		return "topk(3, " + sub() + ")"
	default:
		// A random cut: partial and invalid input.
		s := sub()
		return s[:r.IntN(len(s)+1)]
	}
}

// FuzzDepth checks the pre-scan's promises on arbitrary input.
func FuzzDepth(f *testing.F) {
	for _, q := range depthSeeds {
		f.Add(q)
	}
	for _, q := range benchQueries {
		f.Add(q)
	}
	p := parser.NewParser(parser.Options{EnableExperimentalFunctions: true})
	f.Fuzz(func(t *testing.T, q string) {
		if len(q) > 4096 {
			return // the property, not the parser's speed, is under test
		}
		checkDepth(t, p, q)
	})
}

// TestDepthCountsLabelPairs: the parser compares every label of on() with
// every label of group_left(); a query whose label lists are long enough to
// make that quadratic is measured by its token count, and so refused under
// the default depth limit, though it nests only two deep.
func TestDepthCountsLabelPairs(t *testing.T) {
	labels := func(n int) string { return strings.TrimSuffix(strings.Repeat("x,", n), ",") }
	if d := Depth(`a * on(` + labels(10) + `) group_left(` + labels(10) + `) b`); d != 2 {
		t.Errorf("ten labels a side: depth %d, want 2", d)
	}
	q := `a * on(` + labels(2000) + `) group_left(` + labels(2000) + `) b`
	if d := Depth(q); d <= DefaultLimits.MaxDepth {
		t.Errorf("2000 labels a side: depth %d, want more than the default limit %d", d, DefaultLimits.MaxDepth)
	}
	if err := DefaultLimits.checkQuery(q); !errors.Is(err, ErrLimit) {
		t.Errorf("2000 labels a side: %v, want a limit refusal before parsing", err)
	}
}

// lexedTokens counts the tokens Prometheus's lexer reads, comments excluded.
func lexedTokens(q string) int {
	n := 0
	l := parser.Lex(q)
	for {
		var it parser.Item
		l.NextItem(&it)
		switch it.Typ {
		case parser.EOF, parser.ERROR:
			return n
		case parser.COMMENT:
			continue
		}
		n++
	}
}
