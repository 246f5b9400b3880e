package rewrite

import (
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

func (p *Policy) render(cs []conjunction) []string {
	out := make([]string, len(cs))
	for i, c := range cs {
		out[i] = matchSelectorString(c.selector(false))
	}
	return out
}
