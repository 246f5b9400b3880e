package rewrite

import (
	"context"
	"fmt"
	"math"
	"regexp"
	"slices"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/schema"
)

// Enforcer rewrites queries and selectors under a policy. It holds the parser
// options, which must accept at least what the upstream accepts (experimental
// functions, duration expressions): what it cannot parse is refused.
type Enforcer struct {
	parser parser.Parser
	limits Limits
	cache  *cache // nil: none (see WithCache)
}

// NewEnforcer returns an Enforcer that parses with the given options and
// enforces DefaultLimits (see WithLimits).
func NewEnforcer(opts parser.Options) *Enforcer {
	return &Enforcer{parser: parser.NewParser(opts), limits: DefaultLimits}
}

// EnforceQuery parses a PromQL expression, constrains every selector in it by
// the policy, and returns the rewritten expression's text. A selector that
// overlaps several policy branches that do not merge into one selector is
// replaced by their union, written in PromQL (see unionexpr.go's unionExpr).
// A query over the length or depth limit is refused with a *LimitError before
// it is parsed, and so is a rewritten query over the size limit; one whose
// unions need more selectors than the limit, with a *UnionLimitError. It
// returns ctx.Err() once ctx is done.
func (e *Enforcer) EnforceQuery(ctx context.Context, p *Policy, query string) (string, error) {
	return e.cachedQuery(ctx, rewriteQuery, p, query, e.enforceQuery)
}

func (e *Enforcer) enforceQuery(ctx context.Context, p *Policy, query string) (string, error) {
	expr, err := e.parse(query)
	if err != nil {
		return "", err
	}
	r := e.newRewriter(ctx, p)
	if expr, err = r.enforce(expr); err != nil {
		return "", err
	}
	out := expr.String()
	if len(out) > e.limits.MaxRewrittenSize {
		return "", &LimitError{Limit: LimitRewrittenSize, Got: len(out), Max: e.limits.MaxRewrittenSize}
	}
	return out, nil
}

// parse checks the query's length and depth, then parses it.
func (e *Enforcer) parse(query string) (parser.Expr, error) {
	if err := e.limits.checkQuery(query); err != nil {
		return nil, err
	}
	expr, err := e.parser.ParseExpr(query)
	if err != nil {
		return nil, &ParseError{Input: query, Err: err}
	}
	return expr, nil
}

func (e *Enforcer) newRewriter(ctx context.Context, p *Policy) *rewriter {
	return &rewriter{ctx: ctx, p: p, budget: e.limits.MaxUnionSelectors, limit: e.limits.MaxUnionSelectors, maxSize: e.limits.MaxRewrittenSize}
}

// rewriter constrains the selectors of one query.
type rewriter struct {
	ctx context.Context
	p   *Policy
	// budget is how many more selectors unions may write into the query,
	// of limit in all.
	budget, limit int
	// size estimates the bytes the rewritten query will have as it is
	// built, so that a query growing past maxSize is refused before it is
	// printed (printing a query that grew by the policy in every selector,
	// or by a call copied into every part of a union, is the costly part).
	size, maxSize int
}

// grow adds n bytes to the estimated size of the rewritten query.
func (r *rewriter) grow(n int) error {
	if r.size += n; r.size > r.maxSize {
		return &LimitError{Limit: LimitRewrittenSize, Got: r.size, Max: r.maxSize, AtLeast: true}
	}
	return nil
}

// copiedArgs is the length of c's name and arguments but skip, printed
// (once; their own growth is counted already): what writing c once more
// for another part of a union adds.
func copiedArgs(c *parser.Call, skip int) int {
	n := len(c.Func.Name) + 2
	for i, a := range c.Args {
		if i != skip && a != nil {
			n += len(a.String()) + 2
		}
	}
	return n
}

// enforce constrains every selector below x and returns the expression that
// replaces x: x itself, changed in place, or a union written around it. The
// switch is exhaustive over the parser's node types: an unknown node is
// refused, never skipped, because skipping it could leave a selector
// unconstrained. The walk is linear in the query, which the limits bound;
// the context is checked where a selector's union is reduced and split.
func (r *rewriter) enforce(x parser.Expr) (parser.Expr, error) {
	var err error
	switch n := x.(type) {
	case nil:
		return nil, nil
	case *parser.AggregateExpr:
		if n.Expr, err = r.enforce(n.Expr); err != nil {
			return nil, err
		}
		n.Param, err = r.enforce(n.Param)
		return n, err
	case *parser.BinaryExpr:
		if n.LHS, err = r.enforce(n.LHS); err != nil {
			return nil, err
		}
		n.RHS, err = r.enforce(n.RHS)
		return n, err
	case *parser.Call:
		return r.enforceCall(n)
	case *parser.SubqueryExpr:
		for _, d := range []*parser.DurationExpr{n.RangeExpr, n.StepExpr, n.OriginalOffsetExpr} {
			if err := r.enforceDuration(d); err != nil {
				return nil, err
			}
		}
		n.Expr, err = r.enforce(n.Expr)
		return n, err
	case *parser.ParenExpr:
		n.Expr, err = r.enforce(n.Expr)
		return n, err
	case *parser.UnaryExpr:
		n.Expr, err = r.enforce(n.Expr)
		return n, err
	case *parser.StepInvariantExpr:
		n.Expr, err = r.enforce(n.Expr)
		return n, err
	case *parser.MatrixSelector:
		// A range selector outside a function (the whole query, or in
		// parentheses): its series can only be one selector.
		vs, pieces, err := r.matrixPieces(n)
		if err != nil {
			return nil, err
		}
		if len(pieces) > 1 {
			return nil, r.rangeUnionError(n)
		}
		setMatchers(vs, pieces[0].selector(false))
		return n, nil
	case *parser.VectorSelector:
		return r.enforceVectorSelector(n)
	case *parser.DurationExpr:
		return n, r.enforceDuration(n)
	case *parser.NumberLiteral, *parser.StringLiteral:
		return n, nil
	default:
		return nil, unsupportedf("PromQL node %T", x)
	}
}

// enforceDuration walks a duration expression; it has no selectors today, but
// walking it keeps a future one from slipping through.
func (r *rewriter) enforceDuration(d *parser.DurationExpr) error {
	if d == nil {
		return nil
	}
	var err error
	if d.LHS, err = r.enforce(d.LHS); err != nil {
		return err
	}
	d.RHS, err = r.enforce(d.RHS)
	return err
}

// rangeUnionError refuses a range selector outside a function whose
// series are a union of several selectors.
func (r *rewriter) rangeUnionError(m *parser.MatrixSelector) error {
	vs := m.VectorSelector.(*parser.VectorSelector)
	r.budget = math.MaxInt // the branches are for the message only
	sel := *m
	user := *vs
	user.Name = ""
	sel.VectorSelector = &user
	bs, _ := r.branches(vs, vs.LabelMatchers)
	err := &UnionError{Selector: sel.String()}
	for _, b := range bs {
		err.Branches = append(err.Branches, selectorString(b.selector(false)))
	}
	return err
}

// enforceArgs enforces every argument of c except skip (-1 for none).
func (r *rewriter) enforceArgs(c *parser.Call, skip int) error {
	for i, a := range c.Args {
		if i == skip {
			continue
		}
		var err error
		if c.Args[i], err = r.enforce(a); err != nil {
			return err
		}
	}
	return nil
}

func (r *rewriter) enforceCall(c *parser.Call) (parser.Expr, error) {
	switch c.Func.Name {
	case "info":
		return nil, unsupportedf("info() is not supported through the tenant proxy: it joins info series (target_info by default) " +
			"that no selector in the query names, so they cannot be constrained to the tenant's access policy, and its second argument " +
			"both filters and picks data labels, so a constraint written there would change the answer; " +
			"join with the info metric explicitly instead, for example: up * on (job, instance) group_left (k8s_cluster_name) target_info")
	case "absent", "absent_over_time":
		// The output labels of absent() come from the equality matchers of
		// its argument, so that argument keeps exactly the user's equalities.
		switch a := unparen(c.Args[0]).(type) {
		case *parser.VectorSelector:
			return r.enforceAbsent(c, a, nil)
		case *parser.MatrixSelector:
			vs, ok := a.VectorSelector.(*parser.VectorSelector)
			if !ok {
				return nil, unsupportedf("range selector over %T", a.VectorSelector)
			}
			return r.enforceAbsent(c, vs, a)
		}
	case "timestamp", "start_timestamp":
		// Over a selector itself (not in parentheses), the engine reports
		// each sample's own timestamp; over any other expression, the
		// evaluation time. A union must keep the selector its argument.
		if vs, ok := c.Args[0].(*parser.VectorSelector); ok {
			pieces, err := r.pieces(vs, vs.LabelMatchers)
			if err != nil {
				return nil, err
			}
			return r.perPart(c, 0, vs, pieces, func(piece *parser.VectorSelector) parser.Expr { return piece })
		}
	}
	for i, a := range c.Args {
		ms, ok := unparen(a).(*parser.MatrixSelector)
		if !ok {
			continue
		}
		// A function over a range vector is applied to each piece of a
		// union, and the results are united: every such function computes
		// each series on its own.
		vs, pieces, err := r.matrixPieces(ms)
		if err != nil {
			return nil, err
		}
		return r.perPart(c, i, vs, pieces, func(piece *parser.VectorSelector) parser.Expr {
			m := *ms
			m.VectorSelector = piece
			return &m
		})
	}
	return c, r.enforceArgs(c, -1)
}

// perPart writes c over the pieces of argument i, whose selector is vs:
// with one piece, vs is constrained in place; with several, c is written
// once for each, argument i the piece's selector (as arg builds it from a
// copy of vs), and the results are united. The other arguments are enforced
// once, and shared by the copies.
func (r *rewriter) perPart(c *parser.Call, i int, vs *parser.VectorSelector, pieces []conjunction, arg func(*parser.VectorSelector) parser.Expr) (parser.Expr, error) {
	if err := r.enforceArgs(c, i); err != nil {
		return nil, err
	}
	if len(pieces) == 1 {
		setMatchers(vs, pieces[0].selector(false))
		return c, nil
	}
	if err := r.grow(copiedArgs(c, i) * (len(pieces) - 1)); err != nil {
		return nil, err
	}
	parts := make([]parser.Expr, len(pieces))
	for j, pc := range pieces {
		parts[j] = withArg(c, i, arg(pieceSelector(vs, pc)))
	}
	return unionExpr(parts), nil
}

// matrixPieces returns a range selector's selector and the disjoint pieces
// of its series under the policy.
func (r *rewriter) matrixPieces(m *parser.MatrixSelector) (*parser.VectorSelector, []conjunction, error) {
	vs, ok := m.VectorSelector.(*parser.VectorSelector)
	if !ok {
		return nil, nil, unsupportedf("range selector over %T", m.VectorSelector)
	}
	if err := r.enforceDuration(m.RangeExpr); err != nil {
		return nil, nil, err
	}
	pieces, err := r.pieces(vs, vs.LabelMatchers)
	return vs, pieces, err
}

func (r *rewriter) enforceVectorSelector(vs *parser.VectorSelector) (parser.Expr, error) {
	pieces, err := r.pieces(vs, vs.LabelMatchers)
	if err != nil {
		return nil, err
	}
	if len(pieces) == 1 {
		setMatchers(vs, pieces[0].selector(false))
		return vs, nil
	}
	parts := make([]parser.Expr, len(pieces))
	for i, pc := range pieces {
		parts[i] = pieceSelector(vs, pc)
	}
	return unionExpr(parts), nil
}

// enforceAbsent constrains absent(vs) or absent_over_time(m) where m's
// selector is vs. Several branches give one absent() per branch, ANDed:
// the union is absent iff every branch is, and each reports the same labels.
func (r *rewriter) enforceAbsent(c *parser.Call, vs *parser.VectorSelector, m *parser.MatrixSelector) (parser.Expr, error) {
	if err := r.enforceDuration(vs.OriginalOffsetExpr); err != nil {
		return nil, err
	}
	if m != nil {
		if err := r.enforceDuration(m.RangeExpr); err != nil {
			return nil, err
		}
	}
	user := vs.LabelMatchers
	branches, err := r.branches(vs, user)
	if err != nil {
		return nil, err
	}
	n := copiedArgs(c, 0) * max(len(branches)-1, 0)
	for _, b := range branches {
		n += b.textSize()
	}
	if err := r.grow(n); err != nil {
		return nil, err
	}
	if len(branches) <= 1 {
		ms := []*labels.Matcher{matchNothing}
		if len(branches) == 1 {
			ms = branches[0].selector(false)
		}
		if ms, err = keepAbsentLabels(user, ms); err != nil {
			return nil, err
		}
		setMatchers(vs, ms)
		return c, nil
	}
	parts := make([]parser.Expr, len(branches))
	for i, b := range branches {
		ms, err := keepAbsentLabels(user, b.selector(false))
		if err != nil {
			return nil, err
		}
		piece := *vs
		setMatchers(&piece, ms)
		var arg parser.Expr = &piece
		if m != nil {
			mc := *m
			mc.VectorSelector = &piece
			arg = &mc
		}
		parts[i] = withArg(c, 0, arg)
	}
	return allOf(parts), nil
}

// setMatchers sets a selector's matchers. The printer writes Name as raw
// text before the braces, so it must be a name that reads back as exactly
// that selector; any other value stays a quoted __name__ matcher. A name the
// user wrote bare is known to.
func setMatchers(vs *parser.VectorSelector, ms []*labels.Matcher) {
	vs.LabelMatchers = ms
	userName := vs.Name
	vs.Name = ""
	for _, m := range ms {
		if m.Name == labels.MetricName && m.Type == labels.MatchEqual && (m.Value == userName || isBareName(m.Value)) {
			vs.Name = m.Value
		}
	}
}

// pieceSelector returns a copy of vs (offset, @ and all) that selects the
// series of one piece.
func pieceSelector(vs *parser.VectorSelector, c conjunction) *parser.VectorSelector {
	piece := *vs
	setMatchers(&piece, c.selector(false))
	return &piece
}

// withArg returns a copy of c with argument i replaced.
func withArg(c *parser.Call, i int, arg parser.Expr) *parser.Call {
	out := *c
	out.Args = slices.Clone(c.Args)
	out.Args[i] = arg
	return &out
}

func unparen(x parser.Expr) parser.Expr {
	for {
		p, ok := x.(*parser.ParenExpr)
		if !ok {
			return x
		}
		x = p.Expr
	}
}

// bareNameParser checks names only; it holds just options and is safe for
// concurrent use.
var bareNameParser = parser.NewParser(parser.Options{})

// isBareName reports whether v can be printed as a bare metric name: a legacy
// name that is not a keyword, number (nan, inf) or the like, i.e. one that
// parses back as a selector of exactly that name.
func isBareName(v string) bool {
	if !model.LegacyValidation.IsValidMetricName(v) {
		return false
	}
	e, err := bareNameParser.ParseExpr(v)
	vs, ok := e.(*parser.VectorSelector)
	return err == nil && ok && vs.Name == v
}

// keepAbsentLabels rewrites constrained matchers so that absent() derives from
// them exactly the labels it derives from the user's matchers: equality
// matchers the user did not write become equivalent anchored regexes.
func keepAbsentLabels(user, constrained []*labels.Matcher) ([]*labels.Matcher, error) {
	want := absentLabels(user)
	if alt := absentLabels(storageOrder(user)); !alt.Equal(want) {
		// The upstream's own answer depends on whether its storage read
		// the selector (and so reordered its matchers) before absent()
		// looked at them: no rewrite can match both.
		return nil, unsupportedf("absent() over %s reports labels %v or %v, depending on the order in which Prometheus's storage reads its matchers; "+
			"match each label once", selectorString(user), want, alt)
	}
	out := make([]*labels.Matcher, 0, len(constrained)+1)
	if len(constrained) == 1 && constrained[0] == matchNothing {
		// Nothing matches: keep the user's labels beside the marker.
		for _, l := range want {
			out = append(out, &labels.Matcher{Type: labels.MatchEqual, Name: l.Name, Value: l.Value})
		}
		out = append(out, matchNothing)
	} else {
		for _, m := range constrained {
			if m.Type == labels.MatchEqual && !schema.IsMetadataLabel(m.Name) && !want.Has(m.Name, m.Value) {
				m = &labels.Matcher{Type: labels.MatchRegexp, Name: m.Name, Value: regexp.QuoteMeta(m.Value)}
			}
			out = append(out, m)
		}
	}
	if got := absentLabels(out); !got.Equal(want) || !absentLabels(storageOrder(out)).Equal(want) {
		// Unreachable by construction; refuse rather than answer differently.
		return nil, unsupportedf("absent() over %s would report labels %v instead of %v", selectorString(user), got, want)
	}
	return out, nil
}

// storageOrder returns the matchers in the order Prometheus's TSDB leaves
// them in: PostingsForMatchers sorts the slice it is given in place, those
// that select series before those that subtract (a matcher on a label no
// matcher requires, or a negative one that matches ""), and the engine hands
// it the selector's own matchers, which absent() reads afterwards.
func storageOrder(ms []*labels.Matcher) []*labels.Matcher {
	empty := make(map[*labels.Matcher]bool, len(ms))
	mustBeSet := map[string]bool{}
	for _, m := range ms {
		if empty[m] = matchesEmpty(m); !empty[m] {
			mustBeSet[m.Name] = true
		}
	}
	subtracts := func(m *labels.Matcher) bool {
		return !mustBeSet[m.Name] || (m.Type == labels.MatchNotEqual || m.Type == labels.MatchNotRegexp) && empty[m]
	}
	out := make([]*labels.Matcher, 0, len(ms))
	for _, m := range ms {
		if !subtracts(m) {
			out = append(out, m)
		}
	}
	for _, m := range ms {
		if subtracts(m) {
			out = append(out, m)
		}
	}
	return out
}

// matchesEmpty reports whether m matches the empty value. The rewriter's
// own regex matchers may be built for printing only (not compiled), so a
// regex is compiled here.
func matchesEmpty(m *labels.Matcher) bool {
	switch m.Type {
	case labels.MatchEqual:
		return m.Value == ""
	case labels.MatchNotEqual:
		return m.Value != ""
	}
	c, err := labels.NewMatcher(m.Type, m.Name, m.Value)
	return err == nil && c.Matches("")
}

type labelSet []labels.Label

func (s labelSet) Has(name, value string) bool {
	for _, l := range s {
		if l.Name == name {
			return l.Value == value
		}
	}
	return false
}

func (s labelSet) Equal(o labelSet) bool {
	if len(s) != len(o) {
		return false
	}
	for _, l := range s {
		if !o.Has(l.Name, l.Value) {
			return false
		}
	}
	return true
}

func (s labelSet) String() string { return fmt.Sprint([]labels.Label(s)) }

// absentLabels mirrors the engine's createLabelsForAbsentFunction.
func absentLabels(ms []*labels.Matcher) labelSet {
	var out labelSet
	has := map[string]bool{}
	for _, m := range ms {
		if schema.IsMetadataLabel(m.Name) {
			continue
		}
		if m.Type == labels.MatchEqual && !has[m.Name] {
			out = append(out, labels.Label{Name: m.Name, Value: m.Value})
			has[m.Name] = true
			continue
		}
		for i, l := range out {
			if l.Name == m.Name {
				out = append(out[:i], out[i+1:]...)
				break
			}
		}
	}
	return out
}
