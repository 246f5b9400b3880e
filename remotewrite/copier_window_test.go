package remotewrite

// Copier passes against an in-memory source (served by Prometheus's own
// remote-read handler) and a receiver that, as Prometheus's, stores a batch
// whole or refuses it whole when it holds a sample not newer than one it has.

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/prometheus/config"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/storage/remote"
	"github.com/prometheus/prometheus/tsdb/chunks"
	"go.uber.org/zap"

	"github.com/prom-tenant/caddy-prom-tenant/tenancy"
	"github.com/prom-tenant/caddy-prom-tenant/tenancy/v1alpha1"
)

// testQueryable serves series from memory, for remote read of chunks.
type testQueryable struct{ series []storage.Series }

func (testQueryable) Querier(int64, int64) (storage.Querier, error) {
	return nil, errors.New("samples are not served; read chunks")
}

func (q testQueryable) ChunkQuerier(mint, maxt int64) (storage.ChunkQuerier, error) {
	return testChunkQuerier{q: q, mint: mint, maxt: maxt}, nil
}

type testChunkQuerier struct {
	storage.LabelQuerier // not used by remote read
	q                    testQueryable
	mint, maxt           int64
}

func (testChunkQuerier) Close() error { return nil }

func (cq testChunkQuerier) Select(_ context.Context, _ bool, _ *storage.SelectHints, ms ...*labels.Matcher) storage.ChunkSeriesSet {
	var out []storage.ChunkSeries
	for _, s := range cq.q.series {
		lset := s.Labels()
		if !slices.ContainsFunc(ms, func(m *labels.Matcher) bool { return !m.Matches(lset.Get(m.Name)) }) {
			var in []chunks.Sample
			it := s.Iterator(nil)
			for it.Next() != 0 {
				t, v := it.At()
				if t >= cq.mint && t <= cq.maxt {
					in = append(in, testSample{t: t, f: v})
				}
			}
			if len(in) > 0 {
				out = append(out, storage.NewSeriesToChunkEncoder(testSeries(lset, in)))
			}
		}
	}
	slices.SortFunc(out, func(a, b storage.ChunkSeries) int { return labels.Compare(a.Labels(), b.Labels()) })
	return &testSet[storage.ChunkSeries]{items: out}
}

// testSourceServer serves series (float samples) by remote read.
func testSourceServer(t *testing.T, series []storage.Series) *source {
	t.Helper()
	mux := http.NewServeMux()
	mux.Handle("/api/v1/read", remote.NewReadHandler(nil, nil, testQueryable{series},
		func() config.Config { return config.Config{} }, 0, 1, 1<<20))
	mux.HandleFunc("/api/v1/status/config", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprint(w, `{"status":"success","data":{"yaml":"global: {}\n"}}`)
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	src, err := newSource(srv.URL, 10*time.Second, "test")
	if err != nil {
		t.Fatal(err)
	}
	return src
}

// testStrictReceiver stores batches as a Prometheus does: whole, or, when a
// sample is not newer than the last one its series holds, not at all.
type testStrictReceiver struct {
	stored map[string][]int64 // by series: the timestamps stored
	// failAfter, when set, is asked after a batch is stored: an error is a
	// failure after the commit (a timeout), or a crash before the answer.
	failAfter func() error
	batches   int
}

func (r *testStrictReceiver) send(_ context.Context, b *batch) error {
	r.batches++
	last := map[string]int64{} // in this batch, within it too
	for _, s := range b.samples {
		k := b.series[s.series].String()
		lt, ok := last[k]
		if ts := r.stored[k]; !ok && len(ts) > 0 {
			lt, ok = ts[len(ts)-1], true
		}
		if ok && s.t <= lt {
			return &targetError{reason: "http_400", drop: true, err: fmt.Errorf("out of order sample: %s at %d", b.series[s.series], s.t)}
		}
		last[k] = s.t
	}
	for _, s := range b.samples {
		k := b.series[s.series].String()
		r.stored[k] = append(r.stored[k], s.t)
	}
	if r.failAfter != nil {
		return r.failAfter()
	}
	return nil
}

// testCopier is a copier of the series of namespace "a" to rcv, keeping its
// state in dir.
func testCopier(t *testing.T, src *source, rcv *testStrictReceiver, dir string, base int64, batchSize, maxPending int, maxWindow time.Duration) *copier {
	t.Helper()
	rw := &tenancy.RemoteWrite{Namespace: "copier-window-test", Object: tenancy.ObjectRef{Name: "obj"}, Spec: &v1alpha1.RemoteWriteSpec{}, Policy: testPolicy(t, `{namespace="a"}`)}
	cfg := &settings{
		// The present is 100ms after base; the tests start from a state
		// file, so initial_lookback does not matter.
		readDelay:       time.Since(time.UnixMilli(base + 100)),
		maxWindow:       maxWindow,
		initialLookback: time.Hour,
		batchSize:       batchSize,
		maxPending:      maxPending,
		src:             src,
		passes:          newLimiter(1),
		logger:          zap.NewNop(),
	}
	c := &copier{
		rw: rw, cfg: cfg, interval: time.Second,
		target: &resolvedTarget{id: "remote_write test", protocol: "test", delivery: batchDelivery{target: rcv}},
		logger: zap.NewNop(),
		cur:    &cursor{turn: make(chan struct{}, 1), live: newLiveSeries(), store: stateFile{path: filepath.Join(dir, "state.json")}},
	}
	c.writes, c.cancelWrites = context.WithCancel(context.Background())
	t.Cleanup(c.cancelWrites)
	return c
}

// testCopyAll runs passes until the copier has caught up, or has copied
// every sample up to until (the present moves on while it runs). A pass
// that fails is a restart when restart says so: the copier is built again
// from its state file, its memory lost.
func testCopyAll(t *testing.T, newCopier func() *copier, until int64, restart func() bool) (c *copier) {
	t.Helper()
	c = newCopier()
	for range 10000 {
		caughtUp, err := c.pass(context.Background())
		if err != nil && restart() {
			c = newCopier()
			continue
		}
		if st := c.cur.state; err == nil && (caughtUp || st.acked.T >= until && !st.acked.partial() && st.recorded == nil) {
			return c
		}
	}
	t.Fatalf("not caught up after 10000 passes: progress %+v, recorded %v", c.cur.state.acked, c.cur.state.recorded)
	return nil
}

// testData is float samples of series pod=00.. in namespace a, at base+t.
type testData struct {
	lsets []labels.Labels
	ts    [][]int64
}

func (d testData) series(base int64) []storage.Series {
	var out []storage.Series
	for i, l := range d.lsets {
		var s []chunks.Sample
		for _, t := range d.ts[i] {
			s = append(s, testSample{t: base + t, f: float64(t)})
		}
		out = append(out, testSeries(l, s))
	}
	return out
}

func testPodSeries(i int) labels.Labels {
	return labels.FromStrings("__name__", "m", "namespace", "a", "pod", fmt.Sprintf("%02d", i))
}

// testCheckStored checks the receiver holds every sample of d at or after
// from (relative to base), each once.
func testCheckStored(t *testing.T, rcv *testStrictReceiver, d testData, base, from int64) {
	t.Helper()
	for i, l := range d.lsets {
		var want []int64
		for _, ts := range d.ts[i] {
			if ts >= from {
				want = append(want, base+ts)
			}
		}
		if got := rcv.stored[l.String()]; !slices.Equal(got, want) {
			t.Errorf("receiver holds for %s (relative to base):\n got %v\nwant %v", l, testRelative(got, base), testRelative(want, base))
		}
	}
}

func testRelative(ts []int64, base int64) []int64 {
	out := make([]int64, len(ts))
	for i, t := range ts {
		out[i] = t - base
	}
	return out
}

// TestCopierExactlyOnce copies random data with random batch sizes, window
// limits and failures after the receiver stored a batch, some of them
// restarts, each restart with a batch size of its own: the receiver ends
// with every sample once, none refused but resent batches.
func TestCopierExactlyOnce(t *testing.T) {
	testCopierExactlyOnce(t, 60, testPodSeries, testSourceServer)
}

// TestCopierExactlyOnceExternalLabels: the same from a source with external
// labels, some series storing a label equal to an external one: the
// receiver gets the stored labels.
func TestCopierExactlyOnceExternalLabels(t *testing.T) {
	testCopierExactlyOnce(t, 30, func(i int) labels.Labels {
		l := testPodSeries(i)
		if i%2 == 1 {
			l = labels.NewBuilder(l).Set("cluster", "eu").Labels()
		}
		return l
	}, func(t *testing.T, series []storage.Series) *source {
		return testSourceServerExt(t, series, testExt).source
	})
}

// testRandomData is up to 5 series of lsetOf with random samples in [0, 60).
func testRandomData(r *rand.Rand, lsetOf func(int) labels.Labels) testData {
	var d testData
	for i := range 1 + r.IntN(5) {
		d.lsets = append(d.lsets, lsetOf(i))
		var ts []int64
		for t := range int64(60) {
			if r.IntN(2) == 0 {
				ts = append(ts, t)
			}
		}
		d.ts = append(d.ts, ts)
	}
	return d
}

func testCopierExactlyOnce(t *testing.T, seeds uint64, lsetOf func(int) labels.Labels, newSource func(*testing.T, []storage.Series) *source) {
	base := time.Now().Add(-time.Hour).UnixMilli()
	for seed := range seeds {
		r := rand.New(rand.NewPCG(seed, 11))
		d := testRandomData(r, lsetOf)
		src := newSource(t, d.series(base))
		rcv := &testStrictReceiver{stored: map[string][]int64{}}
		rcv.failAfter = func() error {
			if r.IntN(4) == 0 {
				return &targetError{reason: "network", err: errors.New("timeout after the commit")}
			}
			return nil
		}
		dir := t.TempDir()
		// Copying starts just before the first sample.
		if err := (stateFile{path: filepath.Join(dir, "state.json")}).save(savedState{Target: "remote_write test", Progress: progress{T: base - 1}}); err != nil {
			t.Fatal(err)
		}
		maxPending := 1 + r.IntN(30)
		maxWindow := time.Duration(1+r.IntN(40)) * time.Millisecond
		var c *copier
		var batchSizes []int
		newC := func() *copier {
			// A restart may come with another batch_size: the batches
			// recorded before it are resent at their own boundaries.
			batchSizes = append(batchSizes, 1+r.IntN(8))
			c = testCopier(t, src, rcv, dir, base, batchSizes[len(batchSizes)-1], maxPending, maxWindow)
			return c
		}
		refused := testutil.ToFloat64(metrics.dropped.WithLabelValues("copier-window-test", "http_400"))
		testCopyAll(t, newC, base+60, func() bool { return r.IntN(2) == 0 })
		if t.Failed() {
			return
		}
		// A resent batch is refused (and counted as resent_refused); a
		// batch sent for the first time never is.
		if n := testutil.ToFloat64(metrics.dropped.WithLabelValues(c.rw.Namespace, "http_400")) - refused; n != 0 {
			t.Errorf("seed %d: %v samples refused in batches not marked as resent", seed, n)
		}
		testCheckStored(t, rcv, d, base, 0)
		if t.Failed() {
			t.Fatalf("seed %d: batch sizes %v, max_pending_samples %d, max_window %s", seed, batchSizes, maxPending, maxWindow)
		}
	}
}

// TestCopierStateUnwritable copies random data while the state file is
// made unwritable and writable again at random (a directory where its
// temporary file goes), with failures after the receiver stored a batch
// and restarts that lose the copier's memory, some while the state cannot
// be written: no pass sends anything while the state cannot be saved, its
// status and metrics say so, and the receiver ends with every sample once.
func TestCopierStateUnwritable(t *testing.T) {
	base := time.Now().Add(-time.Hour).UnixMilli()
	for seed := range uint64(40) {
		r := rand.New(rand.NewPCG(seed, 12))
		d := testRandomData(r, testPodSeries)
		src := testSourceServer(t, d.series(base))
		rcv := &testStrictReceiver{stored: map[string][]int64{}}
		rcv.failAfter = func() error {
			if r.IntN(6) == 0 {
				return &targetError{reason: "network", err: errors.New("timeout after the commit")}
			}
			return nil
		}
		dir := t.TempDir()
		path := filepath.Join(dir, "state.json")
		if err := (stateFile{path: path}).save(savedState{Target: "remote_write test", Progress: progress{T: base - 1}}); err != nil {
			t.Fatal(err)
		}
		maxPending := 1 + r.IntN(30)
		maxWindow := time.Duration(1+r.IntN(40)) * time.Millisecond
		newC := func() *copier { return testCopier(t, src, rcv, dir, base, 1+r.IntN(8), maxPending, maxWindow) }
		c := newC()
		failedSaves := testutil.ToFloat64(metrics.saveFailures.WithLabelValues(c.rw.Namespace))
		refused := testutil.ToFloat64(metrics.dropped.WithLabelValues(c.rw.Namespace, "http_400"))
		blocked, sawBlocked := false, false
		done := false
		for range 20000 {
			if r.IntN(4) == 0 {
				if blocked = !blocked; blocked {
					if err := os.Mkdir(path+".tmp", 0o700); err != nil {
						t.Fatal(err)
					}
				} else if err := os.Remove(path + ".tmp"); err != nil {
					t.Fatal(err)
				}
			}
			wasUnwritable, sent := c.unwritable(), rcv.batches
			caughtUp, err := c.pass(context.Background())
			switch {
			case blocked && wasUnwritable && rcv.batches != sent:
				t.Fatalf("seed %d: a pass sent %d batches while the state could not be saved", seed, rcv.batches-sent)
			case errors.Is(err, errStateUnwritable):
				sawBlocked = true
				if s := c.Status(); s.State != stateUnwritable || !strings.Contains(s.LastError, "cannot save the copy's progress") {
					t.Fatalf("seed %d: after a failed save, status %+v", seed, s)
				}
			}
			if err != nil && r.IntN(2) == 0 {
				c = newC() // a crash: the copier's memory is gone, the state file is what the last good save left
				continue
			}
			if st := c.cur.state; !blocked && err == nil && (caughtUp || st.acked.T >= base+60 && !st.acked.partial() && st.recorded == nil) {
				done = true
				break
			}
		}
		if !done {
			t.Fatalf("seed %d: not caught up: progress %+v", seed, c.cur.state.acked)
		}
		if s := c.Status(); s.State != stateCopying || s.LastError != "" {
			t.Errorf("seed %d: status once the state is saved again: %+v", seed, s)
		}
		if n := testutil.ToFloat64(metrics.dropped.WithLabelValues(c.rw.Namespace, "http_400")) - refused; n != 0 {
			t.Errorf("seed %d: %v samples refused in batches not marked as resent", seed, n)
		}
		if sawBlocked && testutil.ToFloat64(metrics.saveFailures.WithLabelValues(c.rw.Namespace)) == failedSaves {
			t.Errorf("seed %d: saves failed, and the failed-save counter did not move", seed)
		}
		testCheckStored(t, rcv, d, base, 0)
		if t.Failed() {
			t.Fatalf("seed %d: max_pending_samples %d, max_window %s", seed, maxPending, maxWindow)
		}
	}
}

// partialTarget writes only the first written samples of every batch.
type partialTarget struct{ written int }

func (p partialTarget) send(context.Context, *batch) error { return &partialWrite{written: p.written} }

// A partial write moves on: the samples written count as sent, the rest as
// dropped with reason partial_write, never as failed (to be retried).
func TestCopierCountsPartialWrite(t *testing.T) {
	c := &copier{
		rw:     &tenancy.RemoteWrite{Namespace: "partial-write-test", Object: tenancy.ObjectRef{Name: "obj"}},
		target: &resolvedTarget{id: "remote_write test", delivery: batchDelivery{target: partialTarget{written: 1}}},
		logger: zap.NewNop(),
		cur:    &cursor{turn: make(chan struct{}, 1), live: newLiveSeries()},
	}
	b := &batch{series: []labels.Labels{labels.FromStrings("__name__", "m")}, samples: []sample{{t: 1}, {t: 2}, {t: 3}}}
	if err := c.write(context.Background(), partialTarget{written: 1}, b, false); err != nil {
		t.Fatalf("write: %v", err)
	}
	if sent, dropped, failed := c.cur.sent.Load(), c.cur.dropped.Load(), c.cur.failed.Load(); sent != 1 || dropped != 2 || failed != 0 {
		t.Errorf("sent %d, dropped %d, failed %d; want 1, 2, 0", sent, dropped, failed)
	}
	if n := testutil.ToFloat64(metrics.dropped.WithLabelValues("partial-write-test", "partial_write")); n != 2 {
		t.Errorf("dropped{reason=partial_write} = %v, want 2", n)
	}
}
