package rewrite

import (
	"context"
	"errors"
	"slices"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
)

// branches returns the user's selector ANDed with each policy branch it
// overlaps, reduced: none if nothing can match, one if a single selector
// says it. Each branch written into the query counts against the budget.
func (r *rewriter) branches(vs *parser.VectorSelector, user []*labels.Matcher) ([]conjunction, error) {
	if err := r.enforceDuration(vs.OriginalOffsetExpr); err != nil {
		return nil, err
	}
	u, ok := newConjunction(user)
	if !ok {
		return nil, nil
	}
	p := r.p
	if len(p.conj) == 1 { // the common case: no union to reduce
		if c, ok := u.and(p.conj[0]); ok {
			return []conjunction{c}, nil
		}
		return nil, nil
	}
	cs := make([]conjunction, 0, len(p.conj))
	for _, b := range p.conj {
		if c, ok := u.and(b); ok {
			cs = append(cs, c)
		}
	}
	cs, err := reduceUnion(r.ctx, cs)
	if err != nil {
		return nil, err
	}
	if len(cs) > 1 {
		if err := r.spend(user, len(cs)); err != nil {
			return nil, err
		}
	}
	return cs, nil
}

// pieces returns the series of the user's selector under the policy as
// disjoint conjunctions: no series matches two of them, and their union is
// the user's selector ANDed with the policy. A selector that matches nothing
// gives one piece that matches nothing. Their text counts towards the size
// of the rewritten query.
func (r *rewriter) pieces(vs *parser.VectorSelector, user []*labels.Matcher) ([]conjunction, error) {
	ps, err := r.disjointPieces(vs, user)
	if err != nil {
		return nil, err
	}
	n := 0
	for _, pc := range ps {
		n += pc.textSize()
	}
	if len(ps) > 1 {
		n += len(ps) * unionPartSize
	}
	if err := r.grow(n); err != nil {
		return nil, err
	}
	return ps, nil
}

// unionPartSize is about what unionExpr writes around each part.
const unionPartSize = 2*len(UnionPartLabel) + 40

func (r *rewriter) disjointPieces(vs *parser.VectorSelector, user []*labels.Matcher) ([]conjunction, error) {
	bs, err := r.branches(vs, user)
	if err != nil || len(bs) == 1 {
		return bs, err
	}
	if len(bs) == 0 {
		return []conjunction{{{name: labels.MetricName, matchers: []*labels.Matcher{matchNothing}}}}, nil
	}
	// The branches are paid for; the pieces beyond them may take the rest
	// of the budget, and splitting stops as soon as they would exceed it.
	ps, err := disjoint(r.ctx, bs, len(bs)+max(r.budget, 0))
	if errors.Is(err, errTooManyPieces) {
		return nil, &UnionLimitError{Selector: selectorString(user), Limit: r.limit}
	}
	if err != nil {
		return nil, err
	}
	if len(ps) > len(bs) {
		if err := r.spend(user, len(ps)-len(bs)); err != nil {
			return nil, err
		}
	}
	return ps, nil
}

// textSize is a lower bound of the length of the conjunction printed as a
// selector, so that a query refused on it is surely over the size limit.
func (a conjunction) textSize() int {
	n := 0
	for _, k := range a {
		label := len(k.name) + 3 // name, operator, quotes
		if k.name == labels.MetricName {
			label = 0 // may be printed bare, without braces
		}
		if k.values != nil {
			v := len(k.values) - 1 // separators
			for _, s := range k.values {
				v += len(s)
			}
			if k.re != nil {
				v = min(v, len(k.re.Value))
			}
			n += label + v
		}
		for _, m := range k.matchers {
			n += label + len(m.Value)
		}
	}
	return n
}

// spend takes n selectors from the budget of selectors unions may write.
func (r *rewriter) spend(user []*labels.Matcher, n int) error {
	r.budget -= n
	if r.budget < 0 {
		return &UnionLimitError{Selector: selectorString(user), Limit: r.limit}
	}
	return nil
}

// errTooManyPieces stops disjoint when the pieces would exceed its bound.
var errTooManyPieces = errors.New("too many pieces")

// disjoint returns conjunctions with the same union as cs, no two of which
// a series can match: each branch less the branches before it. The branches
// with the fewest constraints go first, since subtracting a branch splits
// the rest by its constraints. Subtracting can multiply pieces, so it stops
// with errTooManyPieces as soon as there would be more than limit.
func disjoint(ctx context.Context, cs []conjunction, limit int) ([]conjunction, error) {
	cs = slices.Clone(cs)
	slices.SortStableFunc(cs, func(a, b conjunction) int { return len(a) - len(b) })
	var out []conjunction
	for i, c := range cs {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		parts := []conjunction{c}
		for _, d := range cs[:i] {
			if parts = minus(parts, d); len(parts) == 0 {
				break
			}
			if len(out)+len(parts) > limit {
				return nil, errTooManyPieces
			}
		}
		out = append(out, parts...)
	}
	if len(out) < 2 {
		return out, nil
	}
	// Merging pieces keeps them disjoint: a piece disjoint from two is
	// disjoint from their union.
	return reduceUnion(ctx, out)
}

// minus returns conjunctions whose union is the series of parts that d does
// not match; disjoint parts give disjoint results. With d = m1 ∧ … ∧ mn,
// q ∧ ¬d is the union of q ∧ m1 ∧ … ∧ m(t-1) ∧ ¬mt over t, whose terms are
// disjoint. The matchers negated are the policy's (rendered by dotAll, so
// they mean the same on every upstream) or, being the user's own, contradict
// q and drop out.
func minus(parts []conjunction, d conjunction) []conjunction {
	ms := d.selector(true)
	var out []conjunction
	for _, q := range parts {
		if _, overlap := q.and(d); !overlap {
			out = append(out, q)
			continue
		}
		if q.implies(d) {
			continue
		}
		prefix := q
		for _, m := range ms {
			if neg, ok := newConjunction(Selector{negate(m)}); ok {
				if piece, ok := prefix.and(neg); ok {
					out = append(out, piece)
				}
			}
			pos, ok := newConjunction(Selector{m})
			if !ok {
				break
			}
			if prefix, ok = prefix.and(pos); !ok {
				break
			}
		}
	}
	return out
}

// negate returns the matcher that matches exactly the values m does not.
func negate(m *labels.Matcher) *labels.Matcher {
	t := map[labels.MatchType]labels.MatchType{
		labels.MatchEqual: labels.MatchNotEqual, labels.MatchNotEqual: labels.MatchEqual,
		labels.MatchRegexp: labels.MatchNotRegexp, labels.MatchNotRegexp: labels.MatchRegexp,
	}[m.Type]
	// The regex compiled already as m, so it compiles.
	return labels.MustNewMatcher(t, m.Name, m.Value)
}
