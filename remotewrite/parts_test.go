package remotewrite

import (
	"context"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunks"
)

// A series the streamed answer cut into parts is one series, in time
// order, and merged with another branch's read of it, each sample comes
// once: what collect gets.
func TestJoinedParts(t *testing.T) {
	p := testPolicy(t, `{namespace="a"}`, `{pod="1"}`)
	branch1 := &joinedParts{SeriesSet: testSeriesSet(
		testSeries(seriesA, testFloats(10, 20)), testSeries(seriesA, testFloats(30)), testSeries(seriesA, testFloats(40, 50)),
		testSeries(seriesB, testFloats(10)),
	)}
	branch2 := &joinedParts{SeriesSet: testSeriesSet(testSeries(seriesA, testFloats(10, 20, 30, 40, 50)))}
	merged := storage.NewMergeSeriesSet([]storage.SeriesSet{branch1, branch2}, 0, storage.ChainedSeriesMerge)
	w, err := collect(merged, p, progress{}, 0, 100, 100, false)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		sampleLine(10, seriesA, "100"), sampleLine(20, seriesA, "200"), sampleLine(30, seriesA, "300"),
		sampleLine(40, seriesA, "400"), sampleLine(50, seriesA, "500"), sampleLine(10, seriesB, "100"),
	}
	if got := describeWindow(t, w); !slices.Equal(got, want) || len(w.series) != 2 {
		t.Errorf("samples:\n got %q\nwant %q (series %v)", got, want, w.series)
	}
	// Without joining, the parts are several series with the same labels:
	// collect refuses that as out of order.
	_, err = collect(testSeriesSet(testSeries(seriesA, testFloats(10)), testSeries(seriesA, testFloats(20))), p, progress{}, 0, 100, 100, false)
	if err == nil {
		t.Error("parts not joined: collect took them")
	}
	// Nothing, and one series: as they are.
	if j := (&joinedParts{SeriesSet: testSeriesSet()}); j.Next() {
		t.Error("an empty answer has a series")
	}
	j := &joinedParts{SeriesSet: testSeriesSet(testSeries(seriesC, testFloats(1)))}
	if !j.Next() || !labels.Equal(j.At().Labels(), seriesC) || j.Next() {
		t.Error("one series is not passed on as it is")
	}
}

// Through Prometheus's own remote-read handler: a series of over 1 MiB of
// chunks in one window comes in several frames, and is read whole, from a
// source without external labels and from one with them.
func TestReadSeriesOverFrames(t *testing.T) {
	const n = 200000 // random floats: about 1.6 MiB of chunks
	rng := rand.New(rand.NewPCG(1, 2))
	samples := make([]chunks.Sample, n)
	for i := range samples {
		samples[i] = testSample{t: int64(1000 + i), f: rng.Float64()}
	}
	series := []storage.Series{testSeries(seriesA, samples), testSeries(seriesB, testFloats(1005))}
	pol := testPolicy(t, `{namespace="a"}`)
	for _, ext := range []map[string]string{nil, {"cluster": "eu"}} {
		var src *source
		if ext == nil {
			src = testSourceServer(t, series)
		} else {
			src = testSourceServerExt(t, series, ext).source
		}
		ss, err := src.read(context.Background(), pol, 1000, 1000+n)
		if err != nil {
			t.Fatal(err)
		}
		w, err := collect(ss, pol, progress{}, 1000, 1000+n, 10*n, false)
		if err != nil {
			t.Fatalf("external labels %v: %v", ext, err)
		}
		if len(w.series) != 2 || len(w.samples) != n+1 || !labels.Equal(w.series[0], seriesA) {
			t.Errorf("external labels %v: %d series %v, %d samples; want A and B, %d samples", ext, len(w.series), w.series, len(w.samples), n+1)
		}
		for i := 1; i < n; i++ {
			if w.samples[i].t != w.samples[i-1].t+1 {
				t.Fatalf("external labels %v: sample %d at %d after %d", ext, i, w.samples[i].t, w.samples[i-1].t)
			}
		}
	}
}
