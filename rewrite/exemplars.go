package rewrite

import (
	"context"
	"strings"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
)

// EnforceExemplarQuery rewrites the query of /api/v1/query_exemplars. That
// API does not evaluate its query: it takes the query's selectors (as
// parser.ExtractSelectors finds them) and returns the exemplars of every
// series any of them matches. So the rewritten query is those selectors
// ANDed with the policy, one for each branch each overlaps, joined by `or`:
// their union is exact there, and the upstream extracts exactly them.
//
// The limits apply as for EnforceQuery.
func (e *Enforcer) EnforceExemplarQuery(ctx context.Context, p *Policy, query string) (string, error) {
	return e.cachedQuery(ctx, rewriteExemplar, p, query, e.enforceExemplarQuery)
}

func (e *Enforcer) enforceExemplarQuery(ctx context.Context, p *Policy, query string) (string, error) {
	expr, err := e.parse(query)
	if err != nil {
		return "", err
	}
	r := e.newRewriter(ctx, p)
	var out []string
	for _, user := range parser.ExtractSelectors(expr) {
		bs, err := r.branches(&parser.VectorSelector{}, user)
		if err != nil {
			return "", err
		}
		for _, b := range bs {
			if err := r.grow(b.textSize() + 4); err != nil {
				return "", err
			}
			out = append(out, selectorString(b.selector(false)))
		}
	}
	if len(out) == 0 {
		// No selector, or none that can match: exemplars of nothing.
		return selectorString([]*labels.Matcher{matchNothing}), nil
	}
	rewritten := strings.Join(out, " or ")
	if len(rewritten) > e.limits.MaxRewrittenSize {
		return "", &LimitError{Limit: LimitRewrittenSize, Got: len(rewritten), Max: e.limits.MaxRewrittenSize}
	}
	return rewritten, nil
}
