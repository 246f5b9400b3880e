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

// matchSelectorString renders a match[] selector. An empty conjunction (a
// policy that allows every series) becomes {__name__=~".+"}: the API refuses
// a selector of only empty-matching matchers, and every series has a name.
func matchSelectorString(ms []*labels.Matcher) string {
	if len(ms) == 0 {
		return selectorString([]*labels.Matcher{matchAnyName})
	}
	return selectorString(ms)
}

// matchNothing is a matcher no series satisfies: every value, the empty one
// included, matches "(?s:.*)". The explicit (?s) matters: on Prometheus 2.x
// "." does not match a newline, so !~".*" would match a value holding one.
// It stands in for a selector whose every branch was
// contradictory, and is a non-empty matcher, so the selector still parses.
var matchAnyName = labels.MustNewMatcher(labels.MatchRegexp, labels.MetricName, ".+")

var matchNothing = labels.MustNewMatcher(labels.MatchNotRegexp, labels.MetricName, "(?s:.*)")
