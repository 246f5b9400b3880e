package remotewrite

import (
	"errors"
	"fmt"
	"math"
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
		if s.series < 0 || s.series >= len(w.series) {
			t.Fatalf("sample at %d has series index %d, window has %d series", s.t, s.series, len(w.series))
		}
		var v string
		switch {
		case s.h != nil && s.fh != nil:
			t.Fatalf("sample at %d has both an integer and a float histogram", s.t)
		case s.h != nil:
			v = "h" + s.h.String()
		case s.fh != nil:
			v = "fh" + s.fh.String()
		default:
			v = fmt.Sprint(s.v)
		}
		out = append(out, fmt.Sprintf("%d %s %s", s.t, w.series[s.series], v))
	}
	return out
}

func sampleLine(t int64, lset labels.Labels, v string) string {
	return fmt.Sprintf("%d %s %s", t, lset, v)
}

func TestCollectTimeRangeInclusive(t *testing.T) {
	p := testPolicy(t, `{namespace="a"}`)
	ss := testSeriesSet(testSeries(seriesA, testFloats(5, 9, 10, 15, 20, 21, 25)))
	w, err := collect(ss, p, progress{}, 10, 20, 100)
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
		want       []string
		wantSeries []labels.Labels
	}{
		{
			name: "at T up to and including Series",
			done: progress{T: 15, Series: seriesB},
			want: []string{
				sampleLine(15, seriesC, "150"),
				sampleLine(20, seriesA, "200"),
				sampleLine(20, seriesB, "200"),
				sampleLine(20, seriesC, "200"),
			},
			wantSeries: []labels.Labels{seriesA, seriesB, seriesC},
		},
		{
			name: "empty Series covers every series at T",
			done: progress{T: 15},
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
			want: []string{},
		},
		{
			name: "last series at the last time: nothing left",
			done: progress{T: 20, Series: seriesC},
			want: []string{},
		},
		{
			name: "a series whose samples are all covered is not in the window",
			done: progress{T: 20, Series: seriesA},
			want: []string{
				sampleLine(20, seriesB, "200"),
				sampleLine(20, seriesC, "200"),
			},
			wantSeries: []labels.Labels{seriesB, seriesC},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w, err := collect(read(), p, tc.done, 0, 100, 100)
			if err != nil {
				t.Fatal(err)
			}
			if got := describeWindow(t, w); !slices.Equal(got, tc.want) {
				t.Errorf("samples:\n got %q\nwant %q", got, tc.want)
			}
			if !slices.EqualFunc(w.series, tc.wantSeries, labels.Equal) {
				t.Errorf("series = %v, want %v", w.series, tc.wantSeries)
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
		{"duplicate", []labels.Labels{seriesA, seriesA}},
		{"descending later on", []labels.Labels{seriesA, seriesC, seriesB}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var ss []storage.Series
			for _, l := range tc.series {
				ss = append(ss, testSeries(l, testFloats(10)))
			}
			w, err := collect(testSeriesSet(ss...), p, progress{}, 0, 100, 100)
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
			w, err := collect(tc.ss, p, progress{}, 0, 100, 100)
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
	w, err := collect(testSeriesSet(testSeries(seriesA, testFloats(1)), testSeries(up, testFloats(1))), p, progress{}, 0, 10, 10)
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
	// In range: A 1,2,3 and B 1,2; progress {T:1, Series: A} covers A@1.
	done := progress{T: 1, Series: seriesA}
	for _, tc := range []struct {
		max     int
		wantErr bool
	}{
		{max: 4, wantErr: false}, // exactly the limit
		{max: 100, wantErr: false},
		{max: 3, wantErr: true},
		{max: 0, wantErr: true},
	} {
		t.Run(fmt.Sprint(tc.max), func(t *testing.T) {
			w, err := collect(read(), p, done, 0, 10, tc.max)
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
			if len(w.samples) != 4 {
				t.Errorf("got %d samples, want 4 (covered and out-of-range samples do not count)", len(w.samples))
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
	w, err := collect(ss, p, progress{}, 0, 100, 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(w.samples) != 4 {
		t.Fatalf("got %d samples, want 4: %v", len(w.samples), describeWindow(t, w))
	}
	a, b, c, st := w.samples[0], w.samples[1], w.samples[2], w.samples[3]
	if a.h != nil || a.fh != nil || a.v != 1.5 || a.t != 10 || !labels.Equal(w.series[a.series], seriesA) {
		t.Errorf("float sample = %+v", a)
	}
	if b.h == nil || b.fh != nil || !b.h.Equals(h) || !labels.Equal(w.series[b.series], seriesB) {
		t.Errorf("histogram sample = %+v, want %v", b, h)
	}
	if c.fh == nil || c.h != nil || !c.fh.Equals(fh) || !labels.Equal(w.series[c.series], seriesC) {
		t.Errorf("float histogram sample = %+v, want %v", c, fh)
	}
	if st.t != 20 || math.Float64bits(st.v) != math.Float64bits(stale) {
		t.Errorf("staleness marker = %+v (bits %x), want the exact NaN", st, math.Float64bits(st.v))
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
	w, err := collect(ss, p, progress{}, 0, 100, 100)
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for i := range 3 {
		ts := int64(10 * (i + 1))
		want = append(want,
			sampleLine(ts, seriesA, fmt.Sprint(float64(ts)*10)),
			sampleLine(ts, seriesB, "h"+hs[i].String()),
			sampleLine(ts, seriesC, "fh"+fhs[i].String()),
		)
	}
	if got := describeWindow(t, w); !slices.Equal(got, want) {
		t.Errorf("samples:\n got %q\nwant %q", got, want)
	}
}

func TestCollectOrdersByTimeThenSeries(t *testing.T) {
	p := testPolicy(t, `{namespace="a"}`)
	ss := testSeriesSet(
		testSeries(seriesA, testFloats(10, 30, 40)),
		testSeries(seriesB, testFloats(20, 30)),
		testSeries(seriesC, testFloats(10, 40)),
	)
	w, err := collect(ss, p, progress{}, 0, 100, 100)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		sampleLine(10, seriesA, "100"),
		sampleLine(10, seriesC, "100"),
		sampleLine(20, seriesB, "200"),
		sampleLine(30, seriesA, "300"),
		sampleLine(30, seriesB, "300"),
		sampleLine(40, seriesA, "400"),
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
	for i := 1; i < len(w.samples); i++ {
		a, b := w.samples[i-1], w.samples[i]
		if a.t == b.t && a.series >= b.series {
			t.Errorf("samples %d and %d at %d: series index %d before %d", i-1, i, a.t, a.series, b.series)
		}
	}
}

func TestCollectEmpty(t *testing.T) {
	p := testPolicy(t, `{namespace="a"}`)
	w, err := collect(testSeriesSet(), p, progress{}, 5, 9, 10)
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
		if _, err := collect(ss, p, progress{}, 0, 10, 10); !errors.Is(err, boom) {
			t.Errorf("err = %v, want %v", err, boom)
		}
	})
	t.Run("storage.ErrSeriesSet", func(t *testing.T) {
		if _, err := collect(storage.ErrSeriesSet(boom), p, progress{}, 0, 10, 10); !errors.Is(err, boom) {
			t.Errorf("err = %v, want %v", err, boom)
		}
	})
	t.Run("iterator", func(t *testing.T) {
		ss := testSeriesSet(errSeries{lset: seriesA, err: boom})
		_, err := collect(ss, p, progress{}, 0, 10, 10)
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
