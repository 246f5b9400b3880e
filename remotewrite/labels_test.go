package remotewrite

import (
	"testing"

	"github.com/prometheus/prometheus/model/labels"
)

func TestLabelRuleApply(t *testing.T) {
	for _, tc := range []struct {
		name  string
		extra map[string]string
		honor bool
		in    labels.Labels
		want  labels.Labels
	}{
		{
			name:  "label the series lacks is added",
			extra: map[string]string{"cluster": "c1", "env": "prod"},
			in:    labels.FromStrings("__name__", "up", "job", "j"),
			want:  labels.FromStrings("__name__", "up", "cluster", "c1", "env", "prod", "job", "j"),
		},
		{
			name:  "clash: extra wins, old value to exported_",
			extra: map[string]string{"job": "extra"},
			in:    labels.FromStrings("__name__", "up", "job", "own"),
			want:  labels.FromStrings("__name__", "up", "exported_job", "own", "job", "extra"),
		},
		{
			name:  "clash with exported_ taken: exported_exported_",
			extra: map[string]string{"job": "extra"},
			in:    labels.FromStrings("__name__", "up", "exported_job", "older", "job", "own"),
			want:  labels.FromStrings("__name__", "up", "exported_exported_job", "own", "exported_job", "older", "job", "extra"),
		},
		{
			name:  "clash with two exported_ levels taken",
			extra: map[string]string{"job": "extra"},
			in:    labels.FromStrings("job", "own", "exported_job", "e1", "exported_exported_job", "e2"),
			want:  labels.FromStrings("job", "extra", "exported_job", "e1", "exported_exported_job", "e2", "exported_exported_exported_job", "own"),
		},
		{
			name:  "clash with honor: the series keeps its value",
			extra: map[string]string{"job": "extra", "cluster": "c1"},
			honor: true,
			in:    labels.FromStrings("__name__", "up", "job", "own"),
			want:  labels.FromStrings("__name__", "up", "cluster", "c1", "job", "own"),
		},
		{
			// As Prometheus's scrape: an equal value is a clash too.
			name:  "equal values: exported as well",
			extra: map[string]string{"job": "same"},
			in:    labels.FromStrings("__name__", "up", "job", "same"),
			want:  labels.FromStrings("__name__", "up", "exported_job", "same", "job", "same"),
		},
		{
			name:  "several clashes at once",
			extra: map[string]string{"job": "x", "instance": "y"},
			in:    labels.FromStrings("__name__", "up", "instance", "i", "job", "j"),
			want:  labels.FromStrings("__name__", "up", "exported_instance", "i", "exported_job", "j", "instance", "y", "job", "x"),
		},
		{
			name:  "metric name untouched",
			extra: map[string]string{"namespace": "ns"},
			in:    labels.FromStrings("__name__", "http_requests_total"),
			want:  labels.FromStrings("__name__", "http_requests_total", "namespace", "ns"),
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newLabelRule(tc.extra, tc.honor)
			in := tc.in.Copy()
			got := r.apply(labels.NewBuilder(labels.EmptyLabels()), tc.in)
			if !labels.Equal(got, tc.want) {
				t.Errorf("apply(%s) = %s, want %s", tc.in, got, tc.want)
			}
			if !labels.Equal(tc.in, in) {
				t.Errorf("apply changed its input to %s", tc.in)
			}
		})
	}
}

func TestLabelRuleBuilderReuse(t *testing.T) {
	// The copier reuses one builder for every series: nothing may leak from
	// one series to the next.
	r := newLabelRule(map[string]string{"job": "extra"}, false)
	b := labels.NewBuilder(labels.EmptyLabels())
	first := r.apply(b, labels.FromStrings("job", "own", "a", "1"))
	second := r.apply(b, labels.FromStrings("b", "2"))
	if want := labels.FromStrings("a", "1", "exported_job", "own", "job", "extra"); !labels.Equal(first, want) {
		t.Errorf("first = %s, want %s", first, want)
	}
	if want := labels.FromStrings("b", "2", "job", "extra"); !labels.Equal(second, want) {
		t.Errorf("second = %s, want %s", second, want)
	}
}

func TestLabelRuleNothingToApply(t *testing.T) {
	in := labels.FromStrings("__name__", "up", "job", "j")
	for _, extra := range []map[string]string{nil, {}} {
		for _, honor := range []bool{false, true} {
			r := newLabelRule(extra, honor)
			// A builder holding other labels must not leak into the result.
			b := labels.NewBuilder(labels.FromStrings("leak", "x"))
			got := r.apply(b, in)
			if !labels.Equal(got, in) {
				t.Errorf("extra %v honor %v: apply = %s, want %s", extra, honor, got, in)
			}
		}
	}
}

// TestLabelRuleExtraExportedName: extra labels may include a name of the
// form exported_<name> (validation allows it). Prometheus resolves a clash
// against the labels being built, target labels included, so the series'
// old value goes to the next free exported_ name and every extra label keeps
// its value.
func TestLabelRuleExtraExportedName(t *testing.T) {
	r := newLabelRule(map[string]string{"job": "x", "exported_job": "y"}, false)
	got := r.apply(labels.NewBuilder(labels.EmptyLabels()), labels.FromStrings("__name__", "up", "job", "a"))
	want := labels.FromStrings("__name__", "up", "exported_exported_job", "a", "exported_job", "y", "job", "x")
	if !labels.Equal(got, want) {
		t.Errorf("apply = %s, want %s", got, want)
	}
}
