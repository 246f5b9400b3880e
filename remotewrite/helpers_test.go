package remotewrite

// Helpers shared by this package's tests. Their names start with "test" so
// that they do not collide with helpers of other test files.

import (
	"testing"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/prometheus/prometheus/tsdb/chunks"
	"github.com/prometheus/prometheus/util/annotations"

	"github.com/prom-tenant/caddy-prom-tenant/rewrite"
)

// testPolicy compiles PromQL selectors into a policy (their union).
func testPolicy(t testing.TB, selectors ...string) *rewrite.Policy {
	t.Helper()
	p := parser.NewParser(parser.Options{})
	var sels []rewrite.Selector
	for _, s := range selectors {
		ms, err := p.ParseMetricSelector(s)
		if err != nil {
			t.Fatalf("selector %q: %v", s, err)
		}
		sels = append(sels, ms)
	}
	pol, err := rewrite.NewPolicy(sels)
	if err != nil {
		t.Fatalf("NewPolicy: %v", err)
	}
	return pol
}

// testSample is a chunks.Sample: a float, or a native histogram when h or fh
// is set.
type testSample struct {
	t  int64
	f  float64
	h  *histogram.Histogram
	fh *histogram.FloatHistogram
}

func (s testSample) T() int64                      { return s.t }
func (s testSample) ST() int64                     { return 0 }
func (s testSample) F() float64                    { return s.f }
func (s testSample) H() *histogram.Histogram       { return s.h }
func (s testSample) FH() *histogram.FloatHistogram { return s.fh }
func (s testSample) Type() chunkenc.ValueType {
	switch {
	case s.h != nil:
		return chunkenc.ValHistogram
	case s.fh != nil:
		return chunkenc.ValFloatHistogram
	}
	return chunkenc.ValFloat
}

func (s testSample) Copy() chunks.Sample {
	c := testSample{t: s.t, f: s.f}
	if s.h != nil {
		c.h = s.h.Copy()
	}
	if s.fh != nil {
		c.fh = s.fh.Copy()
	}
	return c
}

// testFloats returns float samples (t, t*10) at each t.
func testFloats(ts ...int64) []chunks.Sample {
	out := make([]chunks.Sample, len(ts))
	for i, t := range ts {
		out[i] = testSample{t: t, f: float64(t) * 10}
	}
	return out
}

// testSeries is an in-memory series (Prometheus's storage.ListSeries).
func testSeries(lset labels.Labels, samples []chunks.Sample) storage.Series {
	return storage.NewListSeries(lset, samples)
}

// testSet is a series set (or chunk series set) that yields its items in
// the given order, as a remote-read answer would, then err.
type testSet[T any] struct {
	items []T
	i     int
	err   error
}

func (s *testSet[T]) Next() bool {
	if s.i >= len(s.items) {
		return false
	}
	s.i++
	return true
}
func (s *testSet[T]) At() T                             { return s.items[s.i-1] }
func (s *testSet[T]) Err() error                        { return s.err }
func (s *testSet[T]) Warnings() annotations.Annotations { return nil }

func testSeriesSet(series ...storage.Series) storage.SeriesSet {
	return &testSet[storage.Series]{items: series}
}

// testBatchTarget is the batch target of a resolved target that takes
// batches.
func testBatchTarget(t testing.TB, rt *resolvedTarget) batchTarget {
	t.Helper()
	d, ok := rt.delivery.(batchDelivery)
	if !ok {
		t.Fatalf("target %s delivers by %T, not in batches", rt.id, rt.delivery)
	}
	return d.target
}
