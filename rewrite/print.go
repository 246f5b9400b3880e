package rewrite

import (
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
)

// selectorString renders matchers as a PromQL selector, `{a="1",b=~"x"}`,
// with the metric name as a __name__ matcher so it reads the same in match[].
func selectorString(ms []*labels.Matcher) string {
	if len(ms) == 0 {
		return "{}"
	}
	return (&parser.VectorSelector{LabelMatchers: ms}).String()
}

// matchAnyName is added to match[] selectors that would otherwise consist
// of empty-matching matchers only, which the API refuses.
var matchAnyName = labels.MustNewMatcher(labels.MatchRegexp, labels.MetricName, ".+")

var matchNothing = labels.MustNewMatcher(labels.MatchNotRegexp, labels.MetricName, "(?s:.*)")
