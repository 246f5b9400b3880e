package rewrite

import (
	"context"
	"fmt"
	"regexp"

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
}

// NewEnforcer returns an Enforcer that parses with the given options and
// enforces DefaultLimits (see WithLimits).
func NewEnforcer(opts parser.Options) *Enforcer {
	return &Enforcer{parser: parser.NewParser(opts), limits: DefaultLimits}
}

// EnforceQuery parses a PromQL expression, constrains every selector in it by
// the policy, and returns the rewritten expression's text. A query over the
// length or depth limit is refused with a *LimitError before it is parsed,
// and so is a rewritten query over the size limit. It returns ctx.Err() once
// ctx is done.
func (e *Enforcer) EnforceQuery(ctx context.Context, p *Policy, query string) (string, error) {
	if err := e.limits.checkQuery(query); err != nil {
		return "", err
	}
	expr, err := e.parser.ParseExpr(query)
	if err != nil {
		return "", &ParseError{Input: query, Err: err}
	}
	if err := p.enforceNode(ctx, expr); err != nil {
		return "", err
	}
	out := expr.String()
	if len(out) > e.limits.MaxRewrittenSize {
		return "", &LimitError{Limit: LimitRewrittenSize, Got: len(out), Max: e.limits.MaxRewrittenSize}
	}
	return out, nil
}

// enforceNode constrains every selector below node. The switch is exhaustive
// over the parser's node types: an unknown node is refused, never skipped,
// because skipping it could leave a selector unconstrained.
func (p *Policy) enforceNode(ctx context.Context, node parser.Node) error {
	switch n := node.(type) {
	case nil:
		return nil
	case *parser.AggregateExpr:
		if err := p.enforceExpr(ctx, n.Expr); err != nil {
			return err
		}
		return p.enforceExpr(ctx, n.Param)
	case *parser.BinaryExpr:
		if err := p.enforceExpr(ctx, n.LHS); err != nil {
			return err
		}
		return p.enforceExpr(ctx, n.RHS)
	case *parser.Call:
		return p.enforceCall(ctx, n)
	case *parser.SubqueryExpr:
		for _, d := range []*parser.DurationExpr{n.RangeExpr, n.StepExpr, n.OriginalOffsetExpr} {
			if err := p.enforceDuration(ctx, d); err != nil {
				return err
			}
		}
		return p.enforceExpr(ctx, n.Expr)
	case *parser.ParenExpr:
		return p.enforceExpr(ctx, n.Expr)
	case *parser.UnaryExpr:
		return p.enforceExpr(ctx, n.Expr)
	case *parser.StepInvariantExpr:
		return p.enforceExpr(ctx, n.Expr)
	case *parser.MatrixSelector:
		return p.enforceMatrixSelector(ctx, n, false)
	case *parser.VectorSelector:
		return p.enforceVectorSelector(ctx, n, false)
	case *parser.DurationExpr:
		return p.enforceDuration(ctx, n)
	case *parser.NumberLiteral, *parser.StringLiteral:
		return nil
	case parser.Expressions:
		for _, x := range n {
			if err := p.enforceExpr(ctx, x); err != nil {
				return err
			}
		}
		return nil
	default:
		return unsupportedf("PromQL node %T", node)
	}
}

// enforceExpr is enforceNode for an Expr field, which may be a nil interface.
func (p *Policy) enforceExpr(ctx context.Context, x parser.Expr) error {
	if x == nil {
		return nil
	}
	return p.enforceNode(ctx, x)
}

// enforceDuration walks a duration expression; it has no selectors today, but
// walking it keeps a future one from slipping through.
func (p *Policy) enforceDuration(ctx context.Context, d *parser.DurationExpr) error {
	if d == nil {
		return nil
	}
	if err := p.enforceExpr(ctx, d.LHS); err != nil {
		return err
	}
	return p.enforceExpr(ctx, d.RHS)
}

func (p *Policy) enforceCall(ctx context.Context, c *parser.Call) error {
	switch c.Func.Name {
	case "info":
		// info() selects target_info (or its second argument's metrics)
		// implicitly: there is no selector in the tree to constrain.
		return unsupportedf("info() is not supported through the tenant proxy: it selects series implicitly; join with the info metric explicitly instead")
	case "absent", "absent_over_time":
		// The output labels of absent() come from the equality matchers of
		// its argument, so that argument keeps exactly the user's equalities.
		arg := c.Args[0]
		for {
			paren, ok := arg.(*parser.ParenExpr)
			if !ok {
				break
			}
			arg = paren.Expr
		}
		switch a := arg.(type) {
		case *parser.VectorSelector:
			return p.enforceVectorSelector(ctx, a, true)
		case *parser.MatrixSelector:
			return p.enforceMatrixSelector(ctx, a, true)
		}
	}
	return p.enforceNode(ctx, c.Args)
}

func (p *Policy) enforceMatrixSelector(ctx context.Context, m *parser.MatrixSelector, absent bool) error {
	vs, ok := m.VectorSelector.(*parser.VectorSelector)
	if !ok {
		return unsupportedf("range selector over %T", m.VectorSelector)
	}
	if err := p.enforceDuration(ctx, m.RangeExpr); err != nil {
		return err
	}
	return p.enforceVectorSelector(ctx, vs, absent)
}

func (p *Policy) enforceVectorSelector(ctx context.Context, vs *parser.VectorSelector, absent bool) error {
	if err := p.enforceDuration(ctx, vs.OriginalOffsetExpr); err != nil {
		return err
	}
	ms, err := p.constrain(ctx, vs.LabelMatchers)
	if err != nil {
		return err
	}
	if absent {
		if ms, err = keepAbsentLabels(vs.LabelMatchers, ms); err != nil {
			return err
		}
	}
	vs.LabelMatchers = ms
	// The printer writes Name as raw text before the braces, so it must be a
	// name that reads back as exactly that selector; any other value stays a
	// quoted __name__ matcher. A name the user wrote bare is known to.
	userName := vs.Name
	vs.Name = ""
	for _, m := range ms {
		if m.Name == labels.MetricName && m.Type == labels.MatchEqual && (m.Value == userName || isBareName(m.Value)) {
			vs.Name = m.Value
		}
	}
	return nil
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

// constrain returns matchers equivalent to the user's selector ANDed with the
// policy, or a *UnionError when that needs more than one selector.
func (p *Policy) constrain(ctx context.Context, user []*labels.Matcher) ([]*labels.Matcher, error) {
	u, ok := newConjunction(user)
	if !ok {
		return []*labels.Matcher{matchNothing}, nil
	}
	if len(p.conj) == 1 { // the common case: no union to reduce
		if c, ok := u.and(p.conj[0]); ok {
			return c.selector(false), nil
		}
		return []*labels.Matcher{matchNothing}, nil
	}
	cs := make([]conjunction, 0, len(p.conj))
	for _, b := range p.conj {
		if c, ok := u.and(b); ok {
			cs = append(cs, c)
		}
	}
	cs, rerr := reduceUnion(ctx, cs)
	if rerr != nil {
		return nil, rerr
	}
	switch len(cs) {
	case 0:
		return []*labels.Matcher{matchNothing}, nil
	case 1:
		return cs[0].selector(false), nil
	}
	err := &UnionError{Selector: selectorString(user)}
	for _, c := range cs {
		err.Branches = append(err.Branches, selectorString(c.selector(false)))
	}
	return nil, err
}

// keepAbsentLabels rewrites constrained matchers so that absent() derives from
// them exactly the labels it derives from the user's matchers: equality
// matchers the user did not write become equivalent anchored regexes.
func keepAbsentLabels(user, constrained []*labels.Matcher) ([]*labels.Matcher, error) {
	want := absentLabels(user)
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
	if got := absentLabels(out); !got.Equal(want) {
		// Unreachable by construction; refuse rather than answer differently.
		return nil, unsupportedf("absent() over %s would report labels %v instead of %v", selectorString(user), got, want)
	}
	return out, nil
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
