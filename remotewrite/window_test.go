package remotewrite

// Tests of collect (window.go), the one function that turns a remote-read
// answer into a window. This file is over 500 lines because every way a
// window is cut, resumed or refused is a case of that one function, and the
// property tests share its fixtures.

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/prometheus/prometheus/tsdb/chunks"
	"github.com/prometheus/prometheus/tsdb/tsdbutil"
)

var (
	seriesA = labels.FromStrings("__name__", "m", "namespace", "a", "pod", "1")
	seriesB = labels.FromStrings("__name__", "m", "namespace", "a", "pod", "2")
	seriesC = labels.FromStrings("__name__", "m", "namespace", "a", "pod", "3")
)

// describeWindow renders a window's samples, in order, as
// "t series value", checking that every sample's series index is valid.
func describeWindow(t *testing.T, w *window) []string {
	t.Helper()
	out := make([]string, 0, len(w.samples))
	for _, s := range w.samples {
		if s.series < 0 || int(s.series) >= len(w.series) {
			t.Fatalf("sample at %d has series index %d, window has %d series", s.t, s.series, len(w.series))
		}
		if s.hist < 0 || int(s.hist) > len(w.hists) {
			t.Fatalf("sample at %d has histogram index %d, window has %d histograms", s.t, s.hist, len(w.hists))
		}
		var v string
		switch h := testHist(w, s); {
		case h.h != nil && h.fh != nil:
			t.Fatalf("sample at %d has both an integer and a float histogram", s.t)
		case h.h != nil:
			v = "h" + h.h.String()
		case h.fh != nil:
			v = "fh" + h.fh.String()
		case s.hist != 0:
			t.Fatalf("sample at %d has an empty histogram", s.t)
		default:
			v = fmt.Sprint(s.v)
		}
		out = append(out, fmt.Sprintf("%d %s %s", s.t, w.series[s.series], v))
	}
	return out
}

// testHist is the histogram of s in w, zero for a float.
func testHist(w *window, s sample) hist {
	return (&batch{hists: w.hists}).hist(&s)
}

func sampleLine(t int64, lset labels.Labels, v string) string {
	return fmt.Sprintf("%d %s %s", t, lset, v)
}

func TestCollectTimeRangeInclusive(t *testing.T) {
	p := testPolicy(t, `{namespace="a"}`)
	ss := testSeriesSet(testSeries(seriesA, testFloats(5, 9, 10, 15, 20, 21, 25)))
	w, err := collect(ss, p, progress{}, 10, 20, 100, false)
	if err != nil {
		t.Fatal(err)
	}
	if w.from != 10 || w.to != 20 {
		t.Errorf("window range = [%d, %d], want [10, 20]", w.from, w.to)
	}
	want := []string{
		sampleLine(10, seriesA, "100"),
		sampleLine(15, seriesA, "150"),
		sampleLine(20, seriesA, "200"),
	}
	if got := describeWindow(t, w); !slices.Equal(got, want) {
		t.Errorf("samples:\n got %q\nwant %q", got, want)
	}
}

func TestCollectLeavesOutWhatProgressCovers(t *testing.T) {
	p := testPolicy(t, `{namespace="a"}`)
	read := func() storage.SeriesSet {
		return testSeriesSet(
			testSeries(seriesA, testFloats(10, 15, 20)),
			testSeries(seriesB, testFloats(10, 15, 20)),
			testSeries(seriesC, testFloats(10, 15, 20)),
		)
	}
	for _, tc := range []struct {
		name       string
		done       progress
		from, to   int64
		want       []string
		wantSeries []labels.Labels
	}{
		{
			name: "every sample at or before T",
			done: progress{T: 15},
			from: 0, to: 100,
			want: []string{
				sampleLine(20, seriesA, "200"),
				sampleLine(20, seriesB, "200"),
				sampleLine(20, seriesC, "200"),
			},
			wantSeries: []labels.Labels{seriesA, seriesB, seriesC},
		},
		{
			name: "everything covered",
			done: progress{T: 20},
			from: 0, to: 100,
			want: []string{},
		},
		{
			// Without a window beyond T, Series covers nothing more.
			name: "Series without a window beyond T",
			done: progress{T: 15, Series: seriesB, SeriesT: 20},
			from: 0, to: 100,
			want: []string{
				sampleLine(20, seriesA, "200"),
				sampleLine(20, seriesB, "200"),
				sampleLine(20, seriesC, "200"),
			},
			wantSeries: []labels.Labels{seriesA, seriesB, seriesC},
		},
		{
			name: "partly sent window: the series before, and Series up to SeriesT",
			done: progress{T: 9, Window: 20, Series: seriesB, SeriesT: 15},
			from: 10, to: 20,
			want: []string{
				sampleLine(20, seriesB, "200"),
				sampleLine(10, seriesC, "100"),
				sampleLine(15, seriesC, "150"),
				sampleLine(20, seriesC, "200"),
			},
			wantSeries: []labels.Labels{seriesB, seriesC},
		},
		{
			name: "partly sent window, Series sent whole",
			done: progress{T: 9, Window: 20, Series: seriesB, SeriesT: 20},
			from: 10, to: 20,
			want: []string{
				sampleLine(10, seriesC, "100"),
				sampleLine(15, seriesC, "150"),
				sampleLine(20, seriesC, "200"),
			},
			wantSeries: []labels.Labels{seriesC},
		},
		{
			name: "partly sent window, Series before its first sample",
			done: progress{T: 9, Window: 20, Series: seriesB, SeriesT: 9},
			from: 10, to: 20,
			want: []string{
				sampleLine(10, seriesB, "100"),
				sampleLine(15, seriesB, "150"),
				sampleLine(20, seriesB, "200"),
				sampleLine(10, seriesC, "100"),
				sampleLine(15, seriesC, "150"),
				sampleLine(20, seriesC, "200"),
			},
			wantSeries: []labels.Labels{seriesB, seriesC},
		},
		{
			name: "partly sent window, last series to the end: nothing left",
			done: progress{T: 9, Window: 20, Series: seriesC, SeriesT: 20},
			from: 10, to: 20,
			want: []string{},
		},
		{
			// Series and SeriesT say nothing of the samples after Window,
			// nor of those at or before T, which are covered anyway.
			name: "a read longer than the partly sent window",
			done: progress{T: 10, Window: 15, Series: seriesB, SeriesT: 15},
			from: 0, to: 100,
			want: []string{
				sampleLine(20, seriesA, "200"),
				sampleLine(20, seriesB, "200"),
				sampleLine(15, seriesC, "150"),
				sampleLine(20, seriesC, "200"),
			},
			wantSeries: []labels.Labels{seriesA, seriesB, seriesC},
		},
		{
			// A window of one millisecond, partly sent.
			name: "one millisecond partly sent",
			done: progress{T: 14, Window: 15, Series: seriesB, SeriesT: 15},
			from: 15, to: 15,
			want: []string{
				sampleLine(15, seriesC, "150"),
			},
			wantSeries: []labels.Labels{seriesC},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w, err := collect(read(), p, tc.done, tc.from, tc.to, 100, false)
			if err != nil {
				t.Fatal(err)
			}
			if got := describeWindow(t, w); !slices.Equal(got, tc.want) {
				t.Errorf("samples:\n got %q\nwant %q", got, tc.want)
			}
			if !slices.EqualFunc(w.series, tc.wantSeries, labels.Equal) {
				t.Errorf("series = %v, want %v", w.series, tc.wantSeries)
			}
			if w.truncated {
				t.Errorf("window truncated without truncate")
			}
		})
	}
}

func TestCollectRefusesSeriesOutOfOrder(t *testing.T) {
	p := testPolicy(t, `{namespace="a"}`)
	for _, tc := range []struct {
		name   string
		series []labels.Labels
	}{
		{"descending", []labels.Labels{seriesB, seriesA}},
		{"duplicate", []labels.Labels{seriesA, seriesA}}, // the same samples twice
		{"descending later on", []labels.Labels{seriesA, seriesC, seriesB}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var ss []storage.Series
			for _, l := range tc.series {
				ss = append(ss, testSeries(l, testFloats(10)))
			}
			w, err := collect(testSeriesSet(ss...), p, progress{}, 0, 100, 100, false)
			if err == nil {
				t.Fatalf("no error; window %v", describeWindow(t, w))
			}
			if !strings.Contains(err.Error(), "out of order") {
				t.Errorf("error %q does not say out of order", err)
			}
			if errors.Is(err, errOutsidePolicy) || errors.Is(err, errWindowFull) {
				t.Errorf("error %q is classified as another error", err)
			}
		})
	}
}

func TestCollectRefusesSeriesOutsidePolicy(t *testing.T) {
	p := testPolicy(t, `{namespace="a"}`)
	other := labels.FromStrings("__name__", "m", "namespace", "b")
	for _, tc := range []struct {
		name string
		ss   storage.SeriesSet
	}{
		{"with samples in range", testSeriesSet(testSeries(seriesA, testFloats(10)), testSeries(other, testFloats(10)))},
		// Even a series with nothing to copy means the source ignored the
		// read's matchers.
		{"without samples in range", testSeriesSet(testSeries(other, testFloats(500)))},
		{"without samples at all", testSeriesSet(testSeries(other, nil))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w, err := collect(tc.ss, p, progress{}, 0, 100, 100, false)
			if !errors.Is(err, errOutsidePolicy) {
				t.Fatalf("err = %v, want errOutsidePolicy", err)
			}
			if w != nil {
				t.Errorf("window returned with the error: %v", describeWindow(t, w))
			}
			if !strings.Contains(err.Error(), `namespace="b"`) {
				t.Errorf("error %q does not name the series", err)
			}
		})
	}
}

func TestCollectUnionPolicy(t *testing.T) {
	// A series matching any branch of the policy is allowed.
	p := testPolicy(t, `{namespace="a"}`, `{__name__="up"}`)
	up := labels.FromStrings("__name__", "up", "namespace", "z")
	w, err := collect(testSeriesSet(testSeries(seriesA, testFloats(1)), testSeries(up, testFloats(1))), p, progress{}, 0, 10, 10, false)
	if err != nil {
		t.Fatal(err)
	}
	if len(w.samples) != 2 {
		t.Errorf("got %d samples, want 2", len(w.samples))
	}
}

func TestCollectMaxSamples(t *testing.T) {
	p := testPolicy(t, `{namespace="a"}`)
	read := func() storage.SeriesSet {
		return testSeriesSet(
			testSeries(seriesA, testFloats(1, 2, 3, 50)), // 50 is out of range
			testSeries(seriesB, testFloats(1, 2)),
		)
	}
	// In range: A 1,2,3 and B 1,2; the partly sent window covers A@1.
	done := progress{T: 0, Window: 10, Series: seriesA, SeriesT: 1}
	all := []string{
		sampleLine(2, seriesA, "20"),
		sampleLine(3, seriesA, "30"),
		sampleLine(1, seriesB, "10"),
		sampleLine(2, seriesB, "20"),
	}
	for _, tc := range []struct {
		max      int
		truncate bool
		wantErr  bool
		want     []string // the window's samples; truncated when fewer than all
	}{
		{max: 4, want: all}, // exactly the limit
		{max: 100, want: all},
		{max: 3, wantErr: true},
		{max: 0, wantErr: true},
		// With truncate the window is the first max samples, in order.
		{max: 4, truncate: true, want: all},
		{max: 100, truncate: true, want: all},
		{max: 3, truncate: true, want: all[:3]}, // cut in the second series
		{max: 2, truncate: true, want: all[:2]}, // cut between series
		{max: 1, truncate: true, want: all[:1]}, // cut in the first series
		{max: 0, truncate: true, want: []string{}},
	} {
		t.Run(fmt.Sprintf("%d truncate=%v", tc.max, tc.truncate), func(t *testing.T) {
			w, err := collect(read(), p, done, 1, 10, tc.max, tc.truncate)
			if tc.wantErr {
				if !errors.Is(err, errWindowFull) {
					t.Fatalf("err = %v, want errWindowFull", err)
				}
				if w != nil {
					t.Errorf("a window came with errWindowFull")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			// Covered and out-of-range samples do not count.
			if got := describeWindow(t, w); !slices.Equal(got, tc.want) {
				t.Errorf("samples:\n got %q\nwant %q", got, tc.want)
			}
			if want := len(tc.want) < len(all); w.truncated != want {
				t.Errorf("truncated = %v, want %v", w.truncated, want)
			}
			if w.from != 1 || w.to != 10 {
				t.Errorf("window range = [%d, %d], want the read's [1, 10]", w.from, w.to)
			}
		})
	}
}

func TestCollectSampleTypes(t *testing.T) {
	p := testPolicy(t, `{namespace="a"}`)
	h := tsdbutil.GenerateTestHistogram(3)
	fh := tsdbutil.GenerateTestFloatHistogram(4)
	stale := math.Float64frombits(0x7ff0000000000002) // Prometheus's staleness marker
	ss := testSeriesSet(
		testSeries(seriesA, []chunks.Sample{testSample{t: 10, f: 1.5}, testSample{t: 20, f: stale}}),
		testSeries(seriesB, []chunks.Sample{testSample{t: 10, h: h}}),
		testSeries(seriesC, []chunks.Sample{testSample{t: 10, fh: fh}}),
	)
	w, err := collect(ss, p, progress{}, 0, 100, 100, false)
	if err != nil {
		t.Fatal(err)
	}
	if len(w.samples) != 4 {
		t.Fatalf("got %d samples, want 4: %v", len(w.samples), describeWindow(t, w))
	}
	// Series by series: A's two samples first.
	a, st, b, c := w.samples[0], w.samples[1], w.samples[2], w.samples[3]
	ah, sth, bh, ch := testHist(w, a), testHist(w, st), testHist(w, b), testHist(w, c)
	if ah.h != nil || ah.fh != nil || a.v != 1.5 || a.t != 10 || !labels.Equal(w.series[a.series], seriesA) {
		t.Errorf("float sample = %+v", a)
	}
	if st.t != 20 || sth.h != nil || sth.fh != nil || math.Float64bits(st.v) != math.Float64bits(stale) || !labels.Equal(w.series[st.series], seriesA) {
		t.Errorf("staleness marker = %+v (bits %x), want the exact NaN", st, math.Float64bits(st.v))
	}
	if b.t != 10 || bh.h == nil || bh.fh != nil || !bh.h.Equals(h) || !labels.Equal(w.series[b.series], seriesB) {
		t.Errorf("histogram sample = %+v, want %v", b, h)
	}
	if c.t != 10 || ch.fh == nil || ch.h != nil || !ch.fh.Equals(fh) || !labels.Equal(w.series[c.series], seriesC) {
		t.Errorf("float histogram sample = %+v, want %v", c, fh)
	}
}

// TestCollectFromEncodedChunks reads series through real chunk encodings
// (XOR, histogram, float histogram), whose iterators decode a new histogram
// per sample and are reused across series as collect reuses them: every
// sample must keep its own value.
func TestCollectFromEncodedChunks(t *testing.T) {
	p := testPolicy(t, `{namespace="a"}`)
	hs := tsdbutil.GenerateTestHistograms(3)
	fhs := tsdbutil.GenerateTestFloatHistograms(3)
	var hSamples, fhSamples []chunks.Sample
	for i := range 3 {
		hSamples = append(hSamples, testSample{t: int64(10 * (i + 1)), h: hs[i]})
		fhSamples = append(fhSamples, testSample{t: int64(10 * (i + 1)), fh: fhs[i]})
	}
	var chunked []storage.ChunkSeries
	for _, s := range []storage.Series{
		testSeries(seriesA, testFloats(10, 20, 30)),
		testSeries(seriesB, hSamples),
		testSeries(seriesC, fhSamples),
	} {
		chunked = append(chunked, storage.NewSeriesToChunkEncoder(s))
	}
	ss := storage.NewSeriesSetFromChunkSeriesSet(&testSet[storage.ChunkSeries]{items: chunked})
	w, err := collect(ss, p, progress{}, 0, 100, 100, false)
	if err != nil {
		t.Fatal(err)
	}
	// Series by series, each in time order.
	var want []string
	for i := range 3 {
		ts := int64(10 * (i + 1))
		want = append(want, sampleLine(ts, seriesA, fmt.Sprint(float64(ts)*10)))
	}
	for i := range 3 {
		want = append(want, sampleLine(int64(10*(i+1)), seriesB, "h"+hs[i].String()))
	}
	for i := range 3 {
		want = append(want, sampleLine(int64(10*(i+1)), seriesC, "fh"+fhs[i].String()))
	}
	if got := describeWindow(t, w); !slices.Equal(got, want) {
		t.Errorf("samples:\n got %q\nwant %q", got, want)
	}
}

func TestCollectOrdersSeriesBySeries(t *testing.T) {
	p := testPolicy(t, `{namespace="a"}`)
	ss := testSeriesSet(
		testSeries(seriesA, testFloats(10, 30, 40)),
		testSeries(seriesB, testFloats(20, 30)),
		testSeries(seriesC, testFloats(10, 40)),
	)
	w, err := collect(ss, p, progress{}, 0, 100, 100, false)
	if err != nil {
		t.Fatal(err)
	}
	// Not by time: C's sample at 10 comes after every sample of A and B.
	want := []string{
		sampleLine(10, seriesA, "100"),
		sampleLine(30, seriesA, "300"),
		sampleLine(40, seriesA, "400"),
		sampleLine(20, seriesB, "200"),
		sampleLine(30, seriesB, "300"),
		sampleLine(10, seriesC, "100"),
		sampleLine(40, seriesC, "400"),
	}
	if got := describeWindow(t, w); !slices.Equal(got, want) {
		t.Errorf("samples:\n got %q\nwant %q", got, want)
	}
	// The series are in label order, so index order is label order, which
	// is what progress compares.
	if !slices.IsSortedFunc(w.series, labels.Compare) {
		t.Errorf("series not in label order: %v", w.series)
	}
	testCheckWindowOrder(t, w)
}

// testCheckWindowOrder checks that w's samples are in progress order:
// series by series, each series' samples in time order, one run per series.
func testCheckWindowOrder(t *testing.T, w *window) {
	t.Helper()
	for i := 1; i < len(w.samples); i++ {
		a, b := w.samples[i-1], w.samples[i]
		switch {
		case a.series > b.series:
			t.Errorf("samples %d and %d: series index %d before %d", i-1, i, a.series, b.series)
		case a.series == b.series && a.t >= b.t:
			t.Errorf("samples %d and %d of series %s: at %d before %d", i-1, i, w.series[a.series], a.t, b.t)
		}
	}
}

func TestCollectEmpty(t *testing.T) {
	p := testPolicy(t, `{namespace="a"}`)
	w, err := collect(testSeriesSet(), p, progress{}, 5, 9, 10, false)
	if err != nil {
		t.Fatal(err)
	}
	if len(w.samples) != 0 || len(w.series) != 0 || w.from != 5 || w.to != 9 {
		t.Errorf("window = %+v, want empty [5, 9]", w)
	}
}

func TestCollectPropagatesErrors(t *testing.T) {
	p := testPolicy(t, `{namespace="a"}`)
	boom := errors.New("stream broke")

	t.Run("series set", func(t *testing.T) {
		ss := &testSet[storage.Series]{items: []storage.Series{testSeries(seriesA, testFloats(1))}, err: boom}
		if _, err := collect(ss, p, progress{}, 0, 10, 10, false); !errors.Is(err, boom) {
			t.Errorf("err = %v, want %v", err, boom)
		}
	})
	t.Run("storage.ErrSeriesSet", func(t *testing.T) {
		if _, err := collect(storage.ErrSeriesSet(boom), p, progress{}, 0, 10, 10, false); !errors.Is(err, boom) {
			t.Errorf("err = %v, want %v", err, boom)
		}
	})
	t.Run("iterator", func(t *testing.T) {
		ss := testSeriesSet(errSeries{lset: seriesA, err: boom})
		_, err := collect(ss, p, progress{}, 0, 10, 10, false)
		if !errors.Is(err, boom) {
			t.Fatalf("err = %v, want %v", err, boom)
		}
		if !strings.Contains(err.Error(), `pod="1"`) {
			t.Errorf("error %q does not name the series", err)
		}
	})
}

// errSeries is a series whose iterator fails at once.
type errSeries struct {
	lset labels.Labels
	err  error
}

func (s errSeries) Labels() labels.Labels { return s.lset }
func (s errSeries) Iterator(chunkenc.Iterator) chunkenc.Iterator {
	return errIterator{Iterator: chunkenc.NewNopIterator(), err: s.err}
}

// errIterator has no samples and fails; vet refuses a method named Seek
// with chunkenc's signature, so the nop iterator provides the rest.
type errIterator struct {
	chunkenc.Iterator
	err error
}

func (e errIterator) Err() error { return e.err }

// testEndOf is the progress once w's samples are acknowledged, as
// sendWindow's endOf builds it after w's last sample.
func testEndOf(done progress, w *window) progress {
	last := w.samples[len(w.samples)-1]
	return progress{T: done.T, Window: w.to, Series: w.series[last.series], SeriesT: last.t}
}

func TestCollectTruncatedThenRest(t *testing.T) {
	p := testPolicy(t, `{namespace="a"}`)
	read := func() storage.SeriesSet {
		return testSeriesSet(
			testSeries(seriesA, testFloats(10, 15, 20)),
			testSeries(seriesB, testFloats(10, 15, 20)),
			testSeries(seriesC, testFloats(15)),
		)
	}
	done := progress{T: 9}
	w, err := collect(read(), p, done, 10, 20, 4, true)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		sampleLine(10, seriesA, "100"),
		sampleLine(15, seriesA, "150"),
		sampleLine(20, seriesA, "200"),
		sampleLine(10, seriesB, "100"),
	}
	if got := describeWindow(t, w); !slices.Equal(got, want) || !w.truncated {
		t.Fatalf("samples (truncated %v):\n got %q\nwant %q, truncated", w.truncated, got, want)
	}
	// The rest: B after 10, then C; A is not read at all.
	done = testEndOf(done, w)
	if want := (progress{T: 9, Window: 20, Series: seriesB, SeriesT: 10}); !testProgressEqual(done, want) {
		t.Fatalf("end of the prefix = %+v, want %+v", done, want)
	}
	w, err = collect(read(), p, done, done.readFrom(), done.Window, 4, true)
	if err != nil {
		t.Fatal(err)
	}
	want = []string{
		sampleLine(15, seriesB, "150"),
		sampleLine(20, seriesB, "200"),
		sampleLine(15, seriesC, "150"),
	}
	if got := describeWindow(t, w); !slices.Equal(got, want) || w.truncated {
		t.Errorf("rest (truncated %v):\n got %q\nwant %q, whole", w.truncated, got, want)
	}
	if !slices.EqualFunc(w.series, []labels.Labels{seriesB, seriesC}, labels.Equal) {
		t.Errorf("series of the rest = %v, want B and C", w.series)
	}
}

// TestCollectTruncatedPartsMakeTheWindow reads random windows in parts of
// random sizes, each from the end of the parts before, as a copier does
// across passes: the parts, in order, are the whole window, nothing twice
// and nothing missing.
func TestCollectTruncatedPartsMakeTheWindow(t *testing.T) {
	p := testPolicy(t, `{namespace="a"}`)
	for seed := range uint64(2000) {
		r := rand.New(rand.NewPCG(seed, 7))
		// Series pod=00, 02, 04, ...; odd pods sort between them.
		var lsets []labels.Labels
		data := map[int][]int64{}
		for i := range 1 + r.IntN(6) {
			pod := 2 * i
			if r.IntN(4) == 0 {
				continue // no such series
			}
			lsets = append(lsets, labels.FromStrings("__name__", "m", "namespace", "a", "pod", fmt.Sprintf("%02d", pod)))
			for ts := range int64(30) {
				if r.IntN(3) == 0 {
					data[len(lsets)-1] = append(data[len(lsets)-1], ts)
				}
			}
		}
		read := func() storage.SeriesSet {
			var ss []storage.Series
			for i, l := range lsets {
				ss = append(ss, testSeries(l, testFloats(data[i]...)))
			}
			return testSeriesSet(ss...)
		}
		from := r.Int64N(15)
		to := from + r.Int64N(15)
		done := progress{T: from - 1}
		if r.IntN(2) == 0 {
			// Already partly sent, up to some series, maybe one that is
			// not in the source (an odd pod).
			done.Window = to
			done.Series = labels.FromStrings("__name__", "m", "namespace", "a", "pod", fmt.Sprintf("%02d", r.IntN(12)))
			done.SeriesT = from - 1 + r.Int64N(to-from+2)
		}
		// The whole window, and what it must be.
		whole, err := collect(read(), p, done, from, to, math.MaxInt, false)
		if err != nil {
			t.Fatal(err)
		}
		var want []string
		for i, l := range lsets {
			for _, ts := range data[i] {
				if ts >= from && ts <= to && !done.covers(ts, l) {
					want = append(want, sampleLine(ts, l, fmt.Sprint(float64(ts)*10)))
				}
			}
		}
		if got := describeWindow(t, whole); !slices.Equal(got, want) {
			t.Fatalf("seed %d: whole window from %+v:\n got %q\nwant %q", seed, done, got, want)
		}

		max := 1 + r.IntN(len(want)+2)
		var got []string
		for parts := 0; ; parts++ {
			if parts > len(want) {
				t.Fatalf("seed %d: more than %d parts for %d samples", seed, parts, len(want))
			}
			w, err := collect(read(), p, done, done.readFrom(), to, max, true)
			if err != nil {
				t.Fatalf("seed %d: %v", seed, err)
			}
			testCheckWindowOrder(t, w)
			got = append(got, describeWindow(t, w)...)
			if len(w.samples) > max {
				t.Fatalf("seed %d: %d samples in a window of at most %d", seed, len(w.samples), max)
			}
			if !w.truncated {
				break
			}
			if len(w.samples) != max {
				t.Fatalf("seed %d: truncated window of %d samples, want %d", seed, len(w.samples), max)
			}
			done = testEndOf(done, w)
			if !done.partial() {
				t.Fatalf("seed %d: the end of a truncated window %+v is not partial", seed, done)
			}
		}
		if !slices.Equal(got, want) {
			t.Fatalf("seed %d: parts of at most %d from [%d, %d]:\n got %q\nwant %q", seed, max, from, to, got, want)
		}
	}
}

// countedSeries counts how often its samples are read.
type countedSeries struct {
	storage.Series
	reads *int
}

func (s countedSeries) Iterator(it chunkenc.Iterator) chunkenc.Iterator {
	*s.reads++
	return s.Series.Iterator(it)
}

func TestCollectSkipsSeriesSentInPartialWindow(t *testing.T) {
	p := testPolicy(t, `{namespace="a"}`)
	done := progress{T: 9, Window: 20, Series: seriesB, SeriesT: 15}
	for _, tc := range []struct {
		name      string
		done      progress
		from, to  int64
		wantReads [3]int // of A, B, C
		want      []string
	}{
		{
			name: "the partly sent window",
			done: done, from: 10, to: 20,
			wantReads: [3]int{0, 1, 1},
			want: []string{
				sampleLine(20, seriesB, "200"),
				sampleLine(15, seriesC, "150"),
			},
		},
		{
			// A's samples after the window are not covered.
			name: "a longer read",
			done: done, from: 10, to: 30,
			wantReads: [3]int{1, 1, 1},
			want: []string{
				sampleLine(25, seriesA, "250"),
				sampleLine(20, seriesB, "200"),
				sampleLine(15, seriesC, "150"),
			},
		},
		{
			name: "Series without a window beyond T",
			done: progress{T: 9, Series: seriesB, SeriesT: 15}, from: 10, to: 20,
			wantReads: [3]int{1, 1, 1},
			want: []string{
				sampleLine(10, seriesA, "100"),
				sampleLine(20, seriesA, "200"),
				sampleLine(10, seriesB, "100"),
				sampleLine(20, seriesB, "200"),
				sampleLine(15, seriesC, "150"),
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var reads [3]int
			ss := testSeriesSet(
				countedSeries{testSeries(seriesA, testFloats(10, 20, 25)), &reads[0]},
				countedSeries{testSeries(seriesB, testFloats(10, 20)), &reads[1]},
				countedSeries{testSeries(seriesC, testFloats(15)), &reads[2]},
			)
			w, err := collect(ss, p, tc.done, tc.from, tc.to, 100, false)
			if err != nil {
				t.Fatal(err)
			}
			if got := describeWindow(t, w); !slices.Equal(got, tc.want) {
				t.Errorf("samples:\n got %q\nwant %q", got, tc.want)
			}
			if reads != tc.wantReads {
				t.Errorf("reads of A, B, C = %v, want %v", reads, tc.wantReads)
			}
		})
	}

	// A skipped series is still checked: outside the policy, or out of
	// order, it fails the window.
	other := labels.FromStrings("__name__", "m", "namespace", "0")
	_, err := collect(testSeriesSet(testSeries(other, testFloats(10)), testSeries(seriesB, testFloats(20))), p, done, 10, 20, 100, false)
	if !errors.Is(err, errOutsidePolicy) {
		t.Errorf("series outside the policy before Series: err = %v, want errOutsidePolicy", err)
	}
	_, err = collect(testSeriesSet(testSeries(seriesB, testFloats(10)), testSeries(seriesA, testFloats(10)), testSeries(seriesC, testFloats(20))), p, done, 10, 20, 100, false)
	if err == nil || !strings.Contains(err.Error(), "out of order") {
		t.Errorf("series out of order before Series: err = %v, want out of order", err)
	}
}
