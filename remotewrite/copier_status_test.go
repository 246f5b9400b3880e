package remotewrite

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/prometheus/model/labels"
	"go.uber.org/zap"

	"github.com/prom-tenant/caddy-prom-tenant/tenancy"
)

// testStatusCopier is a copier of namespace ns that is not started, for
// the status methods.
func testStatusCopier(ns string) *copier {
	return &copier{
		rw:     &tenancy.RemoteWrite{Namespace: ns, Object: tenancy.ObjectRef{Name: "obj"}},
		logger: zap.NewNop(),
		cur:    &cursor{turn: make(chan struct{}, 1), live: newLiveSeries()},
	}
}

// A receiver that fails and is retried shows in the status and the copiers
// gauge while the write is still being retried, not only once retries give
// up; the write that goes through makes the copy copying again.
func TestCopierStatusRetrying(t *testing.T) {
	c := testStatusCopier("status-retrying")
	c.setState(stateCopying)
	var seen atomic.Value
	var requests atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if requests.Add(1) == 1 {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		// The retry: what does the status say meanwhile?
		s := c.Status()
		seen.Store(s)
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(srv.Close)
	tg, err := newRemoteWriteTarget(srv.URL, "1.0", testTargetClient(t), 3, c.retrying)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.write(context.Background(), tg, testBatch(), false); err != nil {
		t.Fatalf("write: %v", err)
	}
	during, _ := seen.Load().(Status)
	if during.State != stateRetrying || !strings.Contains(during.LastError, "http_503") || during.StateSince.IsZero() {
		t.Errorf("status while retrying: state %q since %s, last error %q; want retrying, naming http_503", during.State, during.StateSince, during.LastError)
	}
	if s := c.Status(); s.State != stateCopying || s.LastError != "" {
		t.Errorf("status after the retry went through: %+v", s)
	}
	if v := testutil.ToFloat64(metrics.copiers.WithLabelValues("status-retrying", stateCopying)); v != 1 {
		t.Errorf("copiers{state=copying} = %v, want 1", v)
	}
	if v := testutil.ToFloat64(metrics.copiers.WithLabelValues("status-retrying", stateRetrying)); v != 0 {
		t.Errorf("copiers{state=retrying} = %v after recovering, want 0", v)
	}
}

// A refused batch that may be stored already (a resend) is not a loss: it
// is counted apart from dropped samples, in the status and the metrics.
func TestCopierCountsResentRefusedApart(t *testing.T) {
	const ns = "status-resent"
	c := testStatusCopier(ns)
	b := &batch{series: []labels.Labels{labels.FromStrings("__name__", "m")}, samples: []sample{{t: 1}, {t: 2}, {t: 3}}}
	if err := c.write(context.Background(), refusingTarget{}, b, true); err != nil {
		t.Fatal(err)
	}
	if err := c.write(context.Background(), refusingTarget{}, b, false); err != nil {
		t.Fatal(err)
	}
	s := c.Status()
	if s.SamplesResentRefused != 3 || s.SamplesDropped != 3 {
		t.Errorf("status: %d resent and refused, %d dropped; want 3 and 3", s.SamplesResentRefused, s.SamplesDropped)
	}
	if v := testutil.ToFloat64(metrics.resentRefused.WithLabelValues(ns, "http_400")); v != 3 {
		t.Errorf("samples_resent_refused_total = %v, want 3", v)
	}
	if v := testutil.ToFloat64(metrics.dropped.WithLabelValues(ns, "http_400")); v != 3 {
		t.Errorf("samples_dropped_total{reason=http_400} = %v, want 3: only the batch sent for the first time", v)
	}
	if v := testutil.ToFloat64(metrics.dropped.WithLabelValues(ns, "resent_http_400")); v != 0 {
		t.Errorf("samples_dropped_total{reason=resent_http_400} = %v, want 0", v)
	}
}

// A copier whose state cannot be saved is state_unwritable in its status
// and the gauge, counts each failed save, backs off, and is copying again
// once a save works.
func TestCopierStatusUnwritable(t *testing.T) {
	const ns = "status-unwritable"
	c := testStatusCopier(ns)
	c.target = &resolvedTarget{id: "remote_write test"}
	c.setState(stateCopying)
	blocked := filepath.Join(t.TempDir(), "team")
	c.cur.store = stateFile{path: filepath.Join(blocked, "state.json")}
	if err := os.WriteFile(blocked, []byte("a file where the directory goes"), 0o600); err != nil {
		t.Fatal(err)
	}
	var backoffs []string
	for range 3 {
		err := c.save(nil)
		if !errors.Is(err, errStateUnwritable) {
			t.Fatalf("save into a file: %v, want errStateUnwritable", err)
		}
		backoffs = append(backoffs, c.saveBackoff().String())
	}
	s := c.Status()
	if s.State != stateUnwritable || !strings.Contains(s.LastError, "cannot save the copy's progress") || !strings.Contains(s.LastError, blocked) {
		t.Errorf("status %+v, want state_unwritable, naming state_dir and the path", s)
	}
	if v := testutil.ToFloat64(metrics.saveFailures.WithLabelValues(ns)); v != 3 {
		t.Errorf("state_save_failures_total = %v, want 3", v)
	}
	if v := testutil.ToFloat64(metrics.copiers.WithLabelValues(ns, stateUnwritable)); v != 1 {
		t.Errorf("copiers{state=state_unwritable} = %v, want 1", v)
	}
	if strings.Join(backoffs, " ") != "1s 2s 4s" {
		t.Errorf("backoffs %v, want 1s 2s 4s", backoffs)
	}
	if err := os.Remove(blocked); err != nil {
		t.Fatal(err)
	}
	if err := c.save(nil); err != nil {
		t.Fatalf("save once the way is clear: %v", err)
	}
	if s := c.Status(); s.State != stateCopying || s.LastError != "" || c.unwritable() {
		t.Errorf("status once a save works: %+v", s)
	}
	if v := testutil.ToFloat64(metrics.copiers.WithLabelValues(ns, stateUnwritable)); v != 0 {
		t.Errorf("copiers{state=state_unwritable} = %v once a save works, want 0", v)
	}
}
