package rewrite

import (
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
func (e *Enforcer) EnforceMatchers(p *Policy, match []string) ([]string, error) {
	if len(match) == 0 {
		return p.render(p.conj), nil
	}
	var cs []conjunction
	for _, s := range match {
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
	return p.render(reduceUnion(cs)), nil
}

// render writes conjunctions as match[] selectors. The API refuses a
// selector whose every matcher matches the empty string, so one that matches
// series without any of its labels gets __name__=~".+": every series has a
// name, so it selects the same series.
func (p *Policy) render(cs []conjunction) []string {
	out := make([]string, len(cs))
	for i, c := range cs {
		ms := c.selector(false)
		if c.matchesEmpty() {
			ms = append(ms, matchAnyName)
		}
		out[i] = selectorString(ms)
	}
	return out
}
