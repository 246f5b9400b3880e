package remotewrite

import (
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/prometheus/config"
	"github.com/prometheus/prometheus/storage/remote"
)

// testCountingSource serves d by remote read, counting the reads; the
// second read closes second.
func testCountingSource(t *testing.T, d testData, base int64) (src *source, reads *atomic.Int32, second chan struct{}) {
	t.Helper()
	reads, second = &atomic.Int32{}, make(chan struct{})
	h := remote.NewReadHandler(nil, nil, testQueryable{d.series(base)}, func() config.Config { return config.Config{} }, 0, 1, 1<<20)
	mux := http.NewServeMux()
	mux.HandleFunc("/api/v1/read", func(w http.ResponseWriter, r *http.Request) {
		if reads.Add(1) == 2 {
			close(second)
		}
		h.ServeHTTP(w, r)
	})
	mux.HandleFunc("/api/v1/status/config", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprint(w, `{"status":"success","data":{"yaml":"global: {}\n"}}`)
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	src, err := newSource(srv.URL, 10*time.Second, "test")
	if err != nil {
		t.Fatal(err)
	}
	return src, reads, second
}

// A copier that is behind reads the next window while it delivers one: the
// receiver holds the first batch until the source has been asked for the
// second window. Each window is read once, and the copy is exact.
func TestCopierReadsAhead(t *testing.T) {
	base := time.Now().Add(-time.Hour).UnixMilli()
	var d testData
	for i := range 3 {
		d.lsets = append(d.lsets, testPodSeries(i))
		var ts []int64
		for t := range int64(60) {
			ts = append(ts, t)
		}
		d.ts = append(d.ts, ts)
	}
	src, reads, second := testCountingSource(t, d, base)
	rcv := &testStrictReceiver{stored: map[string][]int64{}}
	first := true
	rcv.failAfter = func() error {
		if !first {
			return nil
		}
		first = false
		select {
		case <-second:
			return nil
		case <-time.After(10 * time.Second):
			t.Error("the next window was not read while the first was delivered")
			return errors.New("no read ahead")
		}
	}
	dir := t.TempDir()
	if err := (stateFile{path: filepath.Join(dir, "state.json")}).save(savedState{Target: "remote_write test", Progress: progress{T: base - 1}}); err != nil {
		t.Fatal(err)
	}
	const window = 10 // ms
	c := testCopier(t, src, rcv, dir, base, 1000, 1000, window*time.Millisecond)
	testCopyAll(t, func() *copier { return c }, base+60, func() bool { return false })
	testCheckStored(t, rcv, d, base, 0)
	// Every window delivered was read once; one more may have been read
	// ahead after the last.
	windows := (c.cur.state.acked.T - (base - 1)) / window
	if n := int64(reads.Load()); n > windows+1 || n < windows {
		t.Errorf("%d reads for %d windows: want one per window (and one read ahead)", n, windows)
	}
}

// A window whose delivery fails is not followed by what was read ahead:
// the next pass reads the failed window again, and the copy is exact.
func TestCopierDropsReadAheadAfterFailure(t *testing.T) {
	base := time.Now().Add(-time.Hour).UnixMilli()
	var d testData
	for i := range 2 {
		d.lsets = append(d.lsets, testPodSeries(i))
		d.ts = append(d.ts, []int64{0, 5, 10, 15, 20, 25, 30, 35})
	}
	src, _, _ := testCountingSource(t, d, base)
	rcv := &testStrictReceiver{stored: map[string][]int64{}}
	fail := true
	rcv.failAfter = func() error {
		if fail {
			fail = false
			return &targetError{reason: "http_503", err: errors.New("unavailable")}
		}
		return nil
	}
	dir := t.TempDir()
	if err := (stateFile{path: filepath.Join(dir, "state.json")}).save(savedState{Target: "remote_write test", Progress: progress{T: base - 1}}); err != nil {
		t.Fatal(err)
	}
	c := testCopier(t, src, rcv, dir, base, 1000, 1000, 10*time.Millisecond)
	if _, err := c.pass(t.Context()); err == nil {
		t.Fatal("the first pass succeeded; the case proves nothing")
	}
	if c.ahead != nil {
		t.Error("a read ahead is kept after a failed delivery")
	}
	testCopyAll(t, func() *copier { return c }, base+40, func() bool { return false })
	testCheckStored(t, rcv, d, base, 0)
}
