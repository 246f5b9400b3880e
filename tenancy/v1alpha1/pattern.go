package v1alpha1

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
)

// MaxPatternBytes is the largest pattern a MetricAccess may hold; the CRD's
// items maxLength is the same number (types.go).
const MaxPatternBytes = 1024

// MaxPatternsPerObject caps spec.metrics of one MetricAccess; the CRD's
// maxItems is the same number (types.go). Compiling costs CPU in the number
// of patterns, and the patterns are written by tenants.
const MaxPatternsPerObject = 256

// promParser parses selector patterns. It holds only options and is safe for
// concurrent use.
var promParser = parser.NewParser(parser.Options{})

var metricNameRE = regexp.MustCompile(`^[a-zA-Z_:][a-zA-Z0-9_:]*$`)

// ParsePattern returns the matchers of one pattern of spec.metrics, one
// conjunctive selector:
//   - a metric name becomes {__name__="name"},
//   - a pattern with "{" is parsed as a Prometheus series selector,
//   - anything else becomes {__name__=~"pattern"}; Prometheus anchors it.
//
// A pattern with neither braces nor regex metacharacters (a UTF-8 metric
// name such as `a-b`) is matched by equality, which is what the anchored
// regex would match.
func ParsePattern(p string) ([]*labels.Matcher, error) {
	switch {
	case p == "":
		return nil, fmt.Errorf("empty pattern")
	case len(p) > MaxPatternBytes:
		return nil, fmt.Errorf("oversized regex: pattern is %d bytes, at most %d allowed", len(p), MaxPatternBytes)
	case strings.TrimSpace(p) != p:
		return nil, fmt.Errorf("pattern %q has leading or trailing whitespace", p)
	case metricNameRE.MatchString(p):
		return nameMatcher(labels.MatchEqual, p)
	case strings.Contains(p, "{"):
		ms, err := promParser.ParseMetricSelector(p)
		if err != nil {
			return nil, fmt.Errorf("invalid selector %q: %w", p, err)
		}
		return ms, nil
	case regexp.QuoteMeta(p) == p:
		return nameMatcher(labels.MatchEqual, p)
	default:
		ms, err := nameMatcher(labels.MatchRegexp, p)
		if err != nil {
			return nil, fmt.Errorf("invalid regex %q: %w", p, err)
		}
		return ms, nil
	}
}

func nameMatcher(t labels.MatchType, v string) ([]*labels.Matcher, error) {
	m, err := labels.NewMatcher(t, labels.MetricName, v)
	if err != nil {
		return nil, err
	}
	return []*labels.Matcher{m}, nil
}
