package tenancy

import (
	"fmt"
	"slices"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/prom-tenant/caddy-prom-tenant/rewrite"
	"github.com/prom-tenant/caddy-prom-tenant/tenancy/v1alpha1"
)

// DefaultMaxPatternsPerNamespace caps the patterns of all MetricAccess
// objects of one namespace together, unless the prom_tenancy option
// max_patterns_per_namespace says otherwise: compiling costs CPU in the
// number of patterns, and the patterns are written by tenants. One object
// holds at most v1alpha1.MaxPatternsPerObject.
const DefaultMaxPatternsPerNamespace = 1024

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

// objectMatchers returns the matchers ANDed into every pattern of m: its
// labelSelectors (sorted by name) and, with metricIsolation, its namespace.
func objectMatchers(m *v1alpha1.MetricAccess) []*labels.Matcher {
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

// selectors compiles the object's patterns, one conjunctive selector each,
// with labelSelectors and metricIsolation ANDed in. Matchers are only ever
// appended: a pattern that constrains a label differently becomes
// contradictory; it is never overridden.
func selectors(m *v1alpha1.MetricAccess) ([]rewrite.Selector, error) {
	extra := objectMatchers(m)
	out := make([]rewrite.Selector, 0, len(m.Spec.Metrics))
	for i, p := range m.Spec.Metrics {
		s, err := v1alpha1.ParsePattern(p)
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
func CompileNamespace(ns string, objs []*v1alpha1.MetricAccess) (*rewrite.Policy, error) {
	var all []rewrite.Selector
	for _, o := range objs {
		if o.Namespace != ns {
			return nil, fmt.Errorf("%s: object does not belong to namespace %q", o.Key(), ns)
		}
		sels, err := selectors(o)
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
