package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prom-tenant/caddy-prom-tenant/internal/testenv"
	"github.com/prom-tenant/caddy-prom-tenant/remotewrite"
)

// podSeries is a scrape target of n series of team-a (and one of team-b,
// which is not copied); every scrape moves the values.
type podSeries struct {
	n       int
	scrapes atomic.Int64
}

func (p *podSeries) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	k := p.scrapes.Add(1)
	w.Header().Set("Content-Type", "text/plain; version=0.0.4")
	for i := range p.n {
		fmt.Fprintf(w, "app_requests_total{namespace=\"team-a\",pod=\"p%03d\"} %d\n", i, k*int64(i+1))
	}
	fmt.Fprintf(w, "app_requests_total{namespace=\"team-b\",pod=\"p000\"} %d\n", k)
}

// durableCopy is one team-a object copying app_requests_total to a receiving
// Prometheus through a recorder, with its state under stateDir.
type durableCopy struct {
	src, recv *testenv.Prometheus
	rec       *recorder
	recURL    string
	tenants   string // the directory of MetricAccess files
	stateDir  string
	admin     int
}

func startDurableCopy(t *testing.T, series int, front func(http.Handler) http.Handler) *durableCopy {
	t.Helper()
	d := &durableCopy{src: startSource(t, &podSeries{n: series}), recv: emptyPrometheus(t)}
	d.rec = &recorder{target: d.recv.URL, acked: map[string]int{}}
	srv := httptest.NewServer(front(d.rec))
	t.Cleanup(srv.Close)
	d.recURL = srv.URL
	d.tenants, d.stateDir, d.admin = t.TempDir(), t.TempDir(), testenv.FreePort(t)
	writeFile(t, filepath.Join(d.tenants, "team-a.yaml"), fmt.Sprintf(metricAccessTemplate, "copy", "team-a", `["app_requests_total"]`, fmt.Sprintf(`  remoteWrite:
    enabled: true
    interval: 5s
    target:
      type: remote_write
      remoteWrite:
        url: %s/api/v1/write
`, d.recURL)))
	return d
}

func (d *durableCopy) caddyfile(batchSize int) string {
	return fmt.Sprintf(`{
	admin 127.0.0.1:%d
	prom_tenancy {
		directory %s
	}
	prom_remote_write %s {
		interval 5s
		read_delay 2s
		initial_lookback 5m
		batch_size %d
		state_dir %s
		allow_url %s/api/v1/write
	}
}
`, d.admin, d.tenants, d.src.URL, batchSize, d.stateDir, d.recURL)
}

// statePath is where the copier keeps its state.
func (d *durableCopy) statePath() string { return filepath.Join(d.stateDir, "team-a", "copy.json") }

// checkExact waits until team-a's copy has caught up with the present and
// checks that the receiver holds every sample of the source once: the
// same raw samples over the whole range, and none acknowledged twice.
func (d *durableCopy) checkExact(t *testing.T, caddy *testenv.Caddy) {
	t.Helper()
	since := time.Now().Add(-2 * time.Second)
	s := waitStatus(t, caddy, "team-a", 90*time.Second, "caught up", func(s remotewrite.Status) bool {
		return s.LastError == "" && s.CopiedUntil.After(since)
	})
	assertExactCopy(t, newAPI(t, d.src.URL, ""), newAPI(t, d.recv.URL, ""), `{__name__="app_requests_total",namespace="team-a"}`, relabel{}, s.CopiedUntil)
	if dup := d.rec.duplicates(); len(dup) > 0 {
		t.Errorf("%d samples acknowledged more than once, e.g. %v", len(dup), dup[:min(5, len(dup))])
	}
}

// copierState is the state and last error of team-a's copier, read as
// plain JSON (so that this test builds against a copier without them).
func copierState(t *testing.T, c *testenv.Caddy) (state, lastError string, sent float64) {
	t.Helper()
	resp, err := http.Get(c.AdminURL + "/prom_tenant/copiers?namespace=team-a")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out []map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || len(out) != 1 {
		t.Fatalf("copiers of team-a: %v, %v", out, err)
	}
	state, _ = out[0]["state"].(string)
	lastError, _ = out[0]["last_error"].(string)
	sent, _ = out[0]["samples_sent"].(float64)
	return state, lastError, sent
}

// TestRemoteWriteStateUnwritable: while live data flows, the copier's state
// file is made unwritable (a directory where its temporary file goes: the
// tests run as root, whom permissions do not stop). The copier sends
// nothing more and says why in its status and metrics; it is killed (-9)
// while the state cannot be written, the way is cleared, and it restarts:
// the receiver ends with every sample of the source exactly once. (A copier
// that copied on from memory resumed from its stale state and mixed stored
// and new samples in batches the receiver refused whole: samples lost.)
func TestRemoteWriteStateUnwritable(t *testing.T) {
	t.Parallel() // see "Parallel tests" in main_test.go
	d := startDurableCopy(t, 40, func(h http.Handler) http.Handler { return h })
	caddy := testenv.StartCaddy(t, d.caddyfile(25))
	d.checkExact(t, caddy)

	blocker := d.statePath() + ".tmp"
	if err := os.Mkdir(blocker, 0o700); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		state, lastError, _ := copierState(t, caddy)
		if state == "state_unwritable" {
			if !strings.Contains(lastError, "cannot save the copy's progress") || !strings.Contains(lastError, blocker) {
				t.Errorf("last_error %q does not say the state under state_dir cannot be saved, and where", lastError)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("status not state_unwritable 20s after its state file became unwritable: %q, %q", state, lastError)
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	m := scrape(t, caddy)
	if v := m["prometheus_proxy_remote_write_state_save_failures_total"].get(map[string]string{"tenant": "team-a"}); v < 1 {
		t.Errorf("state_save_failures_total{tenant=team-a} = %v, want at least 1", v)
	}
	if v := m["prometheus_proxy_remote_write_copiers"].get(map[string]string{"tenant": "team-a", "state": "state_unwritable"}); v != 1 {
		t.Errorf("copiers{tenant=team-a,state=state_unwritable} = %v, want 1", v)
	}
	// Nothing is sent while the progress cannot be saved; the source
	// scrapes on meanwhile.
	acked := d.rec.acknowledged()
	time.Sleep(8 * time.Second)
	if n := d.rec.acknowledged(); n != acked {
		t.Errorf("the receiver acknowledged %d samples while the copier's state could not be saved", n-acked)
	}

	caddy.Kill()
	if err := os.Remove(blocker); err != nil {
		t.Fatal(err)
	}
	caddy.Restart(t)
	d.checkExact(t, caddy)
	if state, _, _ := copierState(t, caddy); state != "copying" {
		t.Errorf("state %q once the state is saved again, want copying", state)
	}
}

// killer sits in front of the recorder: when the receiver has stored the
// batch it is armed for, the proxy is killed (-9) before the answer
// reaches it, so that the batch's acknowledgement is lost.
type killer struct {
	next  http.Handler
	kill  func()
	mu    sync.Mutex
	at    int           // the stored batch to kill at, counted from arming; 0: disarmed
	ready chan struct{} // closed once the proxy to kill has started
	done  chan struct{}
}

func (k *killer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	answer := httptest.NewRecorder()
	k.next.ServeHTTP(answer, r) // the recorder notes what the receiver stores
	k.mu.Lock()
	fire := false
	if k.at > 0 && answer.Code/100 == 2 {
		k.at--
		fire = k.at == 0
	}
	ready, done := k.ready, k.done
	k.mu.Unlock()
	if fire {
		<-ready
		k.kill()
		close(done)
		return
	}
	for name, v := range answer.Header() {
		w.Header()[name] = v
	}
	w.WriteHeader(answer.Code)
	w.Write(answer.Body.Bytes())
}

// arm makes the n-th batch stored from now the one whose answer is lost,
// once ready is closed.
func (k *killer) arm(n int, ready chan struct{}) <-chan struct{} {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.at, k.ready, k.done = n, ready, make(chan struct{})
	return k.done
}

// TestRemoteWriteKillBatchSize kills the copying proxy (-9) mid-copy, with
// a batch stored by the receiver and its answer lost, and restarts it with
// another batch_size: first a smaller one (the batches recorded before the
// crash are resent in parts, each recorded first), killed again the same
// way, then a larger one. The receiver ends with every sample of the
// source exactly once: 0 lost, 0 acknowledged twice.
func TestRemoteWriteKillBatchSize(t *testing.T) {
	t.Parallel() // see "Parallel tests" in main_test.go
	k := &killer{}
	d := startDurableCopy(t, 150, func(h http.Handler) http.Handler { k.next = h; return k })
	// The source holds some 20 samples per series before the copy starts:
	// many batches to copy while it catches up.
	time.Sleep(18 * time.Second)
	var caddy *testenv.Caddy
	k.kill = func() { caddy.Kill() }
	ready := make(chan struct{})
	killed := k.arm(12, ready)
	caddy = testenv.StartCaddy(t, d.caddyfile(97))
	close(ready)
	for i, next := range []struct{ batchSize, killAt int }{{31, 10}, {211, 0}} {
		select {
		case <-killed:
		case <-time.After(60 * time.Second):
			t.Fatalf("run %d: the proxy was not killed: %d samples acknowledged", i, d.rec.acknowledged())
		}
		t.Logf("killed with a batch in flight after %d samples acknowledged; restarting with batch_size %d", d.rec.acknowledged(), next.batchSize)
		ready = make(chan struct{})
		if next.killAt > 0 {
			killed = k.arm(next.killAt, ready)
		}
		caddy.RestartWith(t, d.caddyfile(next.batchSize))
		close(ready)
	}
	d.checkExact(t, caddy)
	s := oneStatus(t, caddy, "team-a")
	if s.SamplesDropped != 0 {
		t.Errorf("%d samples dropped: %+v", s.SamplesDropped, s)
	}
	if s.SamplesResentRefused == 0 {
		t.Errorf("no resent batch was refused: the kills did not lose an answer the receiver had given, and the test proved nothing")
	}
	if log := readFile(t, caddy.LogPath); !strings.Contains(log, "remote write resumes") {
		t.Error("the restarted proxy did not resume from its saved progress")
	}
}
