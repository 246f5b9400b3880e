package rewrite

import (
	"context"
	"errors"
	"slices"

	"github.com/prometheus/prometheus/model/labels"
)

// EnforceMatchers constrains the match[] selectors of the series, labels,
// label values and federate endpoints. Prometheus ORs several match[], so here
// a union is exact: the result is every user selector ANDed with every policy
// branch, reduced. With no user selector, the result is the policy's branches.
// If nothing can match, the result is one selector that matches nothing, never
// an empty list (which the upstream would read as "everything").
//
// More match[] than the limit, a selector over the query length or depth
// limit, or a result over the rewritten size limit is refused with a
// *LimitError. It returns ctx.Err() once ctx is done.
func (e *Enforcer) EnforceMatchers(ctx context.Context, p *Policy, match []string) ([]string, error) {
	return e.cachedMatchers(ctx, p, match, "")
}

// EnforceLabelValuesMatchers is EnforceMatchers for the match[] of
// /api/v1/label/<label>/values. A series without the label adds no value
// to that answer, so a matcher that only requires the label to be set
// (label=~"(?s:.+)" or label!="", as a policy of `metrics: [".+"]` puts on
// __name__) is left out of a selector that stays valid without it: the
// values are the same, and the upstream does not merge the series of every
// value of the label to evaluate it.
func (e *Enforcer) EnforceLabelValuesMatchers(ctx context.Context, p *Policy, label string, match []string) ([]string, error) {
	return e.cachedMatchers(ctx, p, match, label)
}

// cachedMatchers is enforceMatchers through the cache.
func (e *Enforcer) cachedMatchers(ctx context.Context, p *Policy, match []string, valuesOf string) ([]string, error) {
	if e.cache == nil {
		return e.enforceMatchers(ctx, p, match, valuesOf)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	key := matchText(match)
	if valuesOf != "" {
		key = matchText([]string{valuesOf}) + "values:" + key
	}
	if out, ok := e.cache.matchers(p, key); ok {
		return out, nil
	}
	out, err := e.enforceMatchers(ctx, p, match, valuesOf)
	if err != nil {
		return nil, err
	}
	e.cache.addMatchers(p, key, out)
	return out, nil
}

// enforceMatchers rewrites match[]; valuesOf is the label whose values are
// asked for, if any (see EnforceLabelValuesMatchers).
func (e *Enforcer) enforceMatchers(ctx context.Context, p *Policy, match []string, valuesOf string) ([]string, error) {
	if len(match) == 0 {
		return e.checkSize(p.render(p.conj, valuesOf))
	}
	// Each match[] is ANDed with each policy selector before the union is
	// reduced: for a policy of more than matchProduct selectors the limit
	// shrinks, so that the conjunctions built stay under matchProduct times
	// the limit.
	if limit := min(e.limits.MaxMatchers, max(1, e.limits.MaxMatchers*matchProduct/len(p.conj))); len(match) > limit {
		return nil, &LimitError{Limit: LimitMatchers, Got: len(match), Max: limit}
	}
	var cs []conjunction
	for i, s := range match {
		if i%64 == 0 {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
		}
		if err := e.limits.checkQuery(s); err != nil {
			return nil, err
		}
		ms, err := e.parser.ParseMetricSelector(s)
		if err != nil {
			return nil, &ParseError{Input: s, Err: err}
		}
		if !slices.ContainsFunc(ms, func(m *labels.Matcher) bool { return !m.Matches("") }) {
			// As the Prometheus API refuses it: injection must not make a
			// request valid that a tenant-only Prometheus would refuse.
			return nil, &ParseError{Input: s, Err: errors.New("match[] must contain at least one non-empty matcher")}
		}
		u, ok := newConjunction(ms)
		if !ok {
			continue
		}
		for _, b := range p.conj {
			if c, ok := u.and(b); ok {
				cs = append(cs, c)
			}
		}
	}
	if len(cs) == 0 {
		return []string{selectorString([]*labels.Matcher{matchNothing})}, nil
	}
	cs, err := reduceUnion(ctx, cs)
	if err != nil {
		return nil, err
	}
	return e.checkSize(p.render(cs, valuesOf))
}

// matchProduct is how many policy selectors a policy may have before it
// lowers the match[] limit (see EnforceMatchers).
const matchProduct = 64

// checkSize refuses rewritten match[] whose total is over the size limit.
func (e *Enforcer) checkSize(out []string) ([]string, error) {
	n := 0
	for _, s := range out {
		n += len(s)
	}
	if n > e.limits.MaxRewrittenSize {
		return nil, &LimitError{Limit: LimitRewrittenSize, Got: n, Max: e.limits.MaxRewrittenSize}
	}
	return out, nil
}

// render writes conjunctions as match[] selectors. The API refuses a
// selector whose every matcher matches the empty string, so one that matches
// series without any of its labels gets __name__=~".+": every series has a
// name, so it selects the same series. valuesOf, if set, is the label of a
// label-values request: a constraint that only requires it to be set is
// left out where the selector stays valid without it.
func (p *Policy) render(cs []conjunction, valuesOf string) []string {
	out := make([]string, len(cs))
	for i, c := range cs {
		if valuesOf != "" {
			c = c.withoutSetOnly(valuesOf)
		}
		ms := c.selector(false)
		if c.matchesEmpty() {
			ms = append(ms, matchAnyName)
		}
		out[i] = selectorString(ms)
	}
	return out
}
