package remotewrite

import (
	"maps"
	"slices"

	"github.com/prometheus/prometheus/model/labels"
)

// labelRule applies a MetricAccess's extraLabels to a copied series exactly
// as Prometheus applies target labels to scraped series (scrape's
// mutateSampleLabels):
//   - a label the series lacks is added;
//   - with honorLabels, a label the series has keeps the series' value;
//   - without honorLabels (the default), the extra label wins, and the
//     series' own value, equal or not, moves to exported_<name>, or
//     exported_exported_<name> if that is taken in the result, and so on.
//
// The metric name is never changed: extraLabels cannot hold __name__
// (MetricAccess validation refuses it).
type labelRule struct {
	names  []string // sorted
	values map[string]string
	honor  bool
}

func newLabelRule(extra map[string]string, honor bool) labelRule {
	return labelRule{names: slices.Sorted(maps.Keys(extra)), values: extra, honor: honor}
}

// apply returns lset with the rule applied; lset itself if there is nothing
// to apply.
func (r labelRule) apply(b *labels.Builder, lset labels.Labels) labels.Labels {
	if len(r.names) == 0 {
		return lset
	}
	b.Reset(lset)
	var clashes []labels.Label
	for _, name := range r.names {
		old := lset.Get(name)
		switch {
		case old != "" && r.honor:
			continue
		case old != "":
			clashes = append(clashes, labels.Label{Name: name, Value: old})
		}
		b.Set(name, r.values[name])
	}
	// As Prometheus's resolveConflictingExposedLabels: shorter names first,
	// each to the first exported_ name free in the labels being built.
	slices.SortStableFunc(clashes, func(a, b labels.Label) int { return len(a.Name) - len(b.Name) })
	for _, l := range clashes {
		name := l.Name
		for {
			name = "exported_" + name
			if b.Get(name) == "" {
				b.Set(name, l.Value)
				break
			}
		}
	}
	return b.Labels()
}
