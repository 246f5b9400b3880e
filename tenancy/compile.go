package tenancy

import (
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"

	"github.com/prom-tenant/caddy-prom-tenant/rewrite"
)

// MaxPatternBytes is the largest pattern a MetricAccess may hold.
const MaxPatternBytes = 1024

// Caps on the patterns a namespace compiles: compiling costs CPU in the
// number of patterns, and the patterns are written by tenants.
const (
	// MaxPatternsPerObject caps spec.metrics of one MetricAccess; the CRD's
	// maxItems is the same number (types.go).
	MaxPatternsPerObject = 256
	// DefaultMaxPatternsPerNamespace caps the patterns of all MetricAccess
	// objects of one namespace together, unless the prom_tenancy option
	// max_patterns_per_namespace says otherwise.
	DefaultMaxPatternsPerNamespace = 1024
)

// tooManyPatternsError is why a namespace over the per-namespace cap is not a tenant.
type tooManyPatternsError struct {
	ns       string
	n, limit int
}

func errTooManyPatterns(ns string, n, limit int) error { return &tooManyPatternsError{ns, n, limit} }

func (e *tooManyPatternsError) Error() string {
	return fmt.Sprintf("namespace %s: its MetricAccess objects hold %d patterns together, more than the %d allowed per namespace: "+
		"none of them is in force; remove patterns, or raise the cap with the prom_tenancy global option max_patterns_per_namespace",
		e.ns, e.n, e.limit)
}

// promParser parses selector patterns. It holds only options and is safe for
// concurrent use.
var promParser = parser.NewParser(parser.Options{})

var metricNameRE = regexp.MustCompile(`^[a-zA-Z_:][a-zA-Z0-9_:]*$`)

// compilePattern turns one pattern into one conjunctive selector:
//   - a metric name becomes {__name__="name"},
//   - a pattern with "{" is parsed as a Prometheus series selector,
//   - anything else becomes {__name__=~"pattern"}; Prometheus anchors it.
//
// A pattern with neither braces nor regex metacharacters (a UTF-8 metric
// name such as `a-b`) is matched by equality, which is what the anchored
// regex would match.
func compilePattern(p string) (rewrite.Selector, error) {
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
		return rewrite.Selector(ms), nil
	case regexp.QuoteMeta(p) == p:
		return nameMatcher(labels.MatchEqual, p)
	default:
		s, err := nameMatcher(labels.MatchRegexp, p)
		if err != nil {
			return nil, fmt.Errorf("invalid regex %q: %w", p, err)
		}
		return s, nil
	}
}

func nameMatcher(t labels.MatchType, v string) (rewrite.Selector, error) {
	m, err := labels.NewMatcher(t, labels.MetricName, v)
	if err != nil {
		return nil, err
	}
	return rewrite.Selector{m}, nil
}

// objectMatchers returns the matchers ANDed into every pattern of m: its
// labelSelectors (sorted by name) and, with metricIsolation, its namespace.
func objectMatchers(m *MetricAccess) []*labels.Matcher {
	names := make([]string, 0, len(m.Spec.LabelSelectors))
	for k := range m.Spec.LabelSelectors {
		names = append(names, k)
	}
	slices.Sort(names)
	out := make([]*labels.Matcher, 0, len(names)+1)
	for _, k := range names {
		out = append(out, labels.MustNewMatcher(labels.MatchEqual, k, m.Spec.LabelSelectors[k]))
	}
	if m.Spec.MetricIsolation {
		out = append(out, labels.MustNewMatcher(labels.MatchEqual, "namespace", m.Namespace))
	}
	return out
}

// Selectors compiles the object's patterns, one conjunctive selector each,
// with labelSelectors and metricIsolation ANDed in. Matchers are only ever
// appended: a pattern that constrains a label differently becomes
// contradictory; it is never overridden.
func (m *MetricAccess) Selectors() ([]rewrite.Selector, error) {
	extra := objectMatchers(m)
	out := make([]rewrite.Selector, 0, len(m.Spec.Metrics))
	for i, p := range m.Spec.Metrics {
		s, err := compilePattern(p)
		if err != nil {
			return nil, fmt.Errorf("%s: spec.metrics[%d]: %w", m.Key(), i, err)
		}
		sel := make(rewrite.Selector, 0, len(s)+len(extra))
		sel = append(sel, s...)
		sel = append(sel, extra...)
		out = append(out, sel)
	}
	return out, nil
}

// CompileNamespace returns the policy of the tenant ns: the union of the
// selectors of all objs, which must all belong to ns. Objects combine; they
// never cancel each other. It fails if there is nothing to allow, e.g. when
// every selector is contradictory.
func CompileNamespace(ns string, objs []*MetricAccess) (*rewrite.Policy, error) {
	var all []rewrite.Selector
	for _, o := range objs {
		if o.Namespace != ns {
			return nil, fmt.Errorf("%s: object does not belong to namespace %q", o.Key(), ns)
		}
		sels, err := o.Selectors()
		if err != nil {
			return nil, err
		}
		all = append(all, sels...)
	}
	p, err := rewrite.NewPolicy(all)
	if err != nil {
		return nil, fmt.Errorf("namespace %s: %w", ns, err)
	}
	return p, nil
}
