package rewrite

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/promql/promqltest"
	"github.com/prometheus/prometheus/storage"
)

// TestLabelValuesMatchers: for label values, a constraint that only
// requires the asked label to be set is left out, where the selector stays
// valid; nothing else changes.
func TestLabelValuesMatchers(t *testing.T) {
	ctx := context.Background()
	e := NewEnforcer(parser.Options{})
	anyName := newTestPolicy(t, `{__name__=~".+",namespace="t"}`)
	setJob := newTestPolicy(t, `{job!="",namespace="t"}`)
	onlyName := newTestPolicy(t, `{__name__=~".+"}`)
	for _, tc := range []struct {
		p           *Policy
		label       string
		match, want []string
	}{
		{anyName, "__name__", nil, []string{`{namespace="t"}`}},
		{anyName, "__name__", []string{`{job="api"}`}, []string{`{job="api",namespace="t"}`}},
		{anyName, "__name__", []string{`up`}, []string{`{__name__="up",namespace="t"}`}},
		// Another label's values: series without a name would add theirs.
		{anyName, "job", nil, []string{`{__name__=~"(?s:.+)",namespace="t"}`}},
		{setJob, "job", nil, []string{`{namespace="t"}`}},
		{setJob, "__name__", nil, []string{`{job!="",namespace="t"}`}},
		// Without it the selector would match the empty label set, which the API refuses.
		{onlyName, "__name__", nil, []string{`{__name__=~"(?s:.+)"}`}},
		{onlyName, "__name__", []string{`{job=~"a|b"}`}, []string{`{job=~"a|b"}`}},
	} {
		got, err := e.EnforceLabelValuesMatchers(ctx, tc.p, tc.label, tc.match)
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("values of %s under %s, match[] %q: %q, %v; want %q", tc.label, tc.p, tc.match, got, err, tc.want)
		}
	}
}

// TestOracleLabelValues: Prometheus's own LabelValues finds the same values
// with the label-values rewrite as with the match[] rewrite TestOracleMatchers
// checks, over data that has series without a name (which a left-out
// __name__=~".+" lets in) and without a job.
func TestOracleLabelValues(t *testing.T) {
	all := promqltest.LoadedStorage(t, oracleData+`
load 1m
	{namespace="team-a",job="api",code="201"} 1+1x30
	{namespace="team-b",code="202"} 1+1x30
`)
	e := NewEnforcer(parser.Options{})
	policies := [][]string{{`{__name__=~".+",namespace="team-a"}`}, {`{__name__=~".+",job!=""}`}, {`{job!="",namespace="team-b"}`}, {`{__name__=~".+"}`}}
	for _, pc := range oraclePolicies {
		policies = append(policies, pc.selectors)
	}
	matchSets := [][]string{nil, {`{job="api"}`}, {`up`, `{namespace="team-b"}`}, {`{code=~"2.."}`}}
	left := 0
	for _, sels := range policies {
		p := newTestPolicy(t, sels...)
		for _, label := range []string{"__name__", "job", "code", "namespace"} {
			for _, match := range matchSets {
				rewritten, err := e.EnforceLabelValuesMatchers(context.Background(), p, label, match)
				if err != nil {
					t.Fatalf("policy %s, values of %s, match[] %q: %v", p, label, match, err)
				}
				asSeries, err := e.EnforceMatchers(context.Background(), p, match)
				if err != nil {
					t.Fatal(err)
				}
				if !slices.Equal(rewritten, asSeries) {
					left++
				}
				if got, want := labelValues(t, all, label, rewritten), labelValues(t, all, label, asSeries); got != want {
					t.Errorf("policy %s, values of %s, match[] %q → %q\n got  %s\n want %s (from %q)", p, label, match, rewritten, got, want, asSeries)
				}
			}
		}
	}
	if left < 10 {
		t.Errorf("a matcher was left out in %d cases only", left)
	}
}

// labelValues asks the storage's LabelValues, as the API does.
func labelValues(t *testing.T, q storage.Queryable, label string, match []string) string {
	t.Helper()
	querier, err := q.Querier(0, oracleEnd.UnixMilli())
	if err != nil {
		t.Fatal(err)
	}
	defer querier.Close()
	seen := map[string]bool{}
	for _, s := range match {
		ms, err := parser.NewParser(parser.Options{}).ParseMetricSelector(s)
		if err != nil {
			t.Fatalf("match[] %q: %v", s, err)
		}
		vs, _, err := querier.LabelValues(context.Background(), label, nil, ms...)
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range vs {
			seen[v] = true
		}
	}
	return sortedKeys(seen)
}

func sortedKeys(m map[string]bool) string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return strings.Join(out, " ")
}
