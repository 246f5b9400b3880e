package v1alpha1

import (
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"

	"github.com/prometheus/prometheus/model/labels"
)

// EqualityReading says how a `=` matcher of a pattern is read, and how to
// write the other reading. The original proxy documented
// '{__name__="up",instance=".*"}' as "up from any instance"; prom-tenant
// reads = as PromQL does, so a pattern never allows more than it says.
const EqualityReading = `literal, as in PromQL: name="value" matches only series whose label is exactly the text value ` +
	`(instance=".*" matches the text .* and no other instance); for a regular expression write name=~"value" ` +
	`(anchored; instance=~".+" is any instance, instance=~".*" also series without one)`

// regexLike are the characters that make a value look like a regular
// expression rather than a label value. A lone "." is left out: host names
// and instances are full of them.
const regexLike = `*+?|[\`

// looksLikeRegex reports whether an equality value would likely have been
// meant as a regular expression: it holds a quantifier, an alternation, a
// class or an escape, and it compiles as one.
func looksLikeRegex(v string) bool {
	if !strings.ContainsAny(v, regexLike) {
		return false
	}
	_, err := regexp.Compile(v)
	return err == nil
}

// EqualityWarnings lists the `=` matchers of m's patterns and the
// labelSelectors whose values look like regular expressions, each naming the
// field, what is in force and how to write the regular expression. It
// assumes m is valid; a pattern that does not parse is skipped.
func (m *MetricAccess) EqualityWarnings() []string {
	var out []string
	for i, p := range m.Spec.Metrics {
		if !strings.Contains(p, "{") {
			continue // a name or a regex on the name: no = matcher
		}
		ms, err := promParser.ParseMetricSelector(p)
		if err != nil {
			continue
		}
		for _, x := range ms {
			if x.Type == labels.MatchEqual && looksLikeRegex(x.Value) {
				out = append(out, fmt.Sprintf("spec.metrics[%d]: %s=%q is read literally, as PromQL reads =: it matches only the text %q; "+
					"for a regular expression write %s=~%q", i, x.Name, x.Value, x.Value, x.Name, x.Value))
			}
		}
	}
	for _, k := range slices.Sorted(maps.Keys(m.Spec.LabelSelectors)) {
		if v := m.Spec.LabelSelectors[k]; looksLikeRegex(v) {
			out = append(out, fmt.Sprintf("spec.labelSelectors[%s]: %q is read literally (labelSelectors are equalities): it matches only the text %q; "+
				"for a regular expression add %s=~%q to the patterns instead", k, v, v, k, v))
		}
	}
	return out
}
