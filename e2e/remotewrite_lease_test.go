package e2e

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/prom-tenant/caddy-prom-tenant/internal/testenv"
	"github.com/prom-tenant/caddy-prom-tenant/remotewrite"
)

// leaseExposition is team-l's scrape target: a few series whose values move
// with every scrape, so that each sample is distinguishable.
type leaseExposition struct {
	mu sync.Mutex
	n  int
}

func (e *leaseExposition) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	e.mu.Lock()
	e.n++
	n := e.n
	e.mu.Unlock()
	w.Header().Set("Content-Type", "text/plain; version=0.0.4")
	for i := range 6 {
		fmt.Fprintf(w, "app_requests_total{namespace=\"team-l\",path=\"/%d\"} %d\n", i, (i+1)*n)
	}
	fmt.Fprintf(w, "app_requests_total{namespace=\"team-m\",path=\"/x\"} %d\n", n) // another tenant's
}

// TestRemoteWriteLeaderElection runs two proxies with the same
// configuration against the real kube-apiserver: exactly one copies team-l
// (the other says who does), and when the copier is killed with SIGKILL
// mid-copy, the other takes its Lease over and resumes from the progress
// the first kept in the API, so that the receiver ends with every sample of
// the source exactly once, none lost, none refused.
func TestRemoteWriteLeaderElection(t *testing.T) {
	e := newKubeEnv(t, testenv.SharedKubeAPIServer(t))
	const ns, ops = "team-l", "prom-tenant-lease"
	e.namespace(t, ns)
	e.namespace(t, ops)
	src := startSource(t, new(leaseExposition))
	recv := emptyPrometheus(t)
	rec := &recorder{target: recv.URL, acked: map[string]int{}}
	// Armed, the next write is stored by the receiver and its answer held
	// back until the sender is gone: the kill then lands with a batch
	// stored but not acknowledged.
	var arm atomic.Bool
	held := make(chan struct{})
	recSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if arm.CompareAndSwap(true, false) {
			w = holdAnswer{w, func() { close(held); <-r.Context().Done() }}
		}
		rec.ServeHTTP(w, r)
	}))
	t.Cleanup(recSrv.Close)
	applyLeaseCopy(t, e, ns, recSrv.URL)

	// Small batches: a kill then most likely lands with a batch in flight.
	const batchSize = 5
	config := func() string { return leaseCopyConfig(t, e.api, ns, ops, src.URL, recSrv.URL, batchSize) }
	first := testenv.StartCaddy(t, config())
	lead := waitCopier(t, first, ns, 60*time.Second, "copying as the leader", func(s remotewrite.Status) bool {
		return s.Leader != nil && *s.Leader && s.SamplesSent > 0
	})
	if lead.LeaseHolder == "" || !strings.HasPrefix(lead.Lease, ops+"/prom-tenant-copy-") {
		t.Errorf("leader's status: lease %q, holder %q", lead.Lease, lead.LeaseHolder)
	}
	second := testenv.StartCaddy(t, config())
	standby := waitCopier(t, second, ns, 30*time.Second, "standing by", func(s remotewrite.Status) bool {
		return s.Leader != nil && !*s.Leader && s.LeaseHolder == lead.LeaseHolder
	})
	if standby.Lease != lead.Lease {
		t.Errorf("the replicas disagree on team-l's Lease: %q and %q", lead.Lease, standby.Lease)
	}
	lease, err := e.client.CoordinationV1().Leases(ops).Get(t.Context(), strings.TrimPrefix(lead.Lease, ops+"/"), metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if h := lease.Spec.HolderIdentity; h == nil || *h != lead.LeaseHolder {
		t.Errorf("the Lease's holder is %v, the status says %s", h, lead.LeaseHolder)
	}
	assertLeaseHeld(t, first, lead.Lease, 1)
	assertLeaseHeld(t, second, lead.Lease, 0)

	// Both run side by side for a while: only the leader sends.
	until := time.Now().Add(10 * time.Second)
	waitCopier(t, first, ns, 60*time.Second, "10s further on", func(s remotewrite.Status) bool { return s.CopiedUntil.After(until) })
	if s := oneStatus(t, second, ns); s.SamplesSent != 0 || s.Leader == nil || *s.Leader {
		t.Fatalf("the standby copies too: %+v", s)
	}
	if acked, sent := rec.acknowledged(), oneStatus(t, first, ns).SamplesSent; uint64(acked) != sent {
		t.Errorf("the receiver acknowledged %d samples, the leader sent %d: someone else sent", acked, sent)
	}

	// The leader dies mid-copy; the standby takes the Lease over once it
	// expires, and resumes where the first one's progress ended.
	arm.Store(true)
	select {
	case <-held:
	case <-time.After(60 * time.Second):
		t.Fatal("the leader sent nothing more for 60s")
	}
	first.Kill()
	killedAt := time.Now()
	waitCopier(t, second, ns, 90*time.Second, "leading", func(s remotewrite.Status) bool { return s.Leader != nil && *s.Leader })
	t.Logf("the standby took the Lease over %s after the kill (lease_duration 8s)", time.Since(killedAt).Round(100*time.Millisecond))
	took := waitCopier(t, second, ns, 90*time.Second, "taking over and copying 10s past the kill", func(s remotewrite.Status) bool {
		return s.Leader != nil && *s.Leader && s.CopiedUntil.After(killedAt.Add(10*time.Second))
	})
	if took.LeaseHolder == lead.LeaseHolder || took.LastError != "" {
		t.Errorf("after the takeover: %+v", took)
	}
	if log := readFile(t, second.LogPath); !regexp.MustCompile(`"recorded_batches_to_resend":[1-9]`).MatchString(log) {
		t.Errorf("the new leader did not resend the batches the kill left unacknowledged; its log:\n%s", log)
	}
	assertLeaseHeld(t, second, lead.Lease, 1)

	// Every sample of the source, over the whole range, exactly once.
	assertExactCopy(t, newAPI(t, src.URL, ""), newAPI(t, recv.URL, ""), `{__name__="app_requests_total",namespace="team-l"}`, relabel{}, took.CopiedUntil)
	// The batches recorded before the kill are resent, each alone: the
	// receiver acknowledges their identical samples twice (or refuses them
	// as out of order), and nothing else.
	if d := rec.duplicates(); len(d) > recordedBatches*batchSize {
		t.Errorf("%d samples acknowledged more than once (at most %d resent batches of %d may be), e.g. %v", len(d), recordedBatches, batchSize, d[:min(5, len(d))])
	} else if len(d) > 0 {
		t.Logf("resent after the kill, acknowledged twice: %v", d)
	}
	// Nothing refused but such a resend.
	for _, s := range seriesOf(scrape(t, second)["prometheus_proxy_remote_write_samples_dropped_total"]) {
		if r := s.labels["reason"]; !strings.HasPrefix(r, "resent_") && s.value > 0 {
			t.Errorf("the new leader dropped %g samples (%s)", s.value, r)
		}
	}
}

// holdAnswer calls hold before it sends the status.
type holdAnswer struct {
	http.ResponseWriter
	hold func()
}

func (h holdAnswer) WriteHeader(code int) {
	h.hold()
	h.ResponseWriter.WriteHeader(code)
}

// assertLeaseHeld checks c's lease_held gauge for lease.
func assertLeaseHeld(t *testing.T, c *testenv.Caddy, lease string, want float64) {
	t.Helper()
	for _, s := range seriesOf(scrape(t, c)["prometheus_proxy_remote_write_lease_held"]) {
		if s.labels["lease"] == lease {
			if s.value != want {
				t.Errorf("%s: lease_held{lease=%q} = %g, want %g", c.AdminURL, lease, s.value, want)
			}
			return
		}
	}
	t.Errorf("%s: no lease_held for %s", c.AdminURL, lease)
}

// applyLeaseCopy creates team ns's MetricAccess "copy", which copies
// app_requests_total to the receiver at recURL every 5s.
func applyLeaseCopy(t *testing.T, e *kubeEnv, ns, recURL string) {
	t.Helper()
	e.apply(t, fmt.Sprintf(metricAccessTemplate, "copy", ns, `["app_requests_total"]`, fmt.Sprintf(`  remoteWrite:
    enabled: true
    interval: 5s
    target: {type: remote_write, remoteWrite: {url: "%s/api/v1/write"}}
`, recURL)))
}

// recordedBatches is how many batches one save of a copier's progress
// records before sending them (remotewrite's batchesPerSave): after a crash
// or a lost Lease, at most these are resent.
const recordedBatches = 16

// leaseCopyConfig is the Caddyfile of a replica that follows ns's objects
// on api and copies from srcURL to recURL under leader election, with its
// Leases and progress in namespace ops and short lease timings.
func leaseCopyConfig(t *testing.T, api *testenv.KubeAPIServer, ns, ops, srcURL, recURL string, batchSize int) string {
	return fmt.Sprintf(`{
	admin 127.0.0.1:%d
	prom_tenancy {
		kubernetes {
			kubeconfig %s
			namespaces %s
		}
	}
	prom_remote_write %s {
		interval 5s
		read_delay 2s
		initial_lookback 5m
		batch_size %d
		allow_url %s
		kubernetes {
			kubeconfig %s
		}
		leader_election {
			namespace %s
			lease_duration 8s
			renew_deadline 5s
			retry_period 1s
		}
	}
}
`, testenv.FreePort(t), api.Kubeconfig, ns, srcURL, batchSize, recURL, api.Kubeconfig, ops)
}

// seriesOf is a family's series; none for a family not exported (yet).
func seriesOf(f *familyValues) []seriesValue {
	if f == nil {
		return nil
	}
	return f.series
}

// waitCopier is waitStatus for a copier that may not exist yet (the
// Kubernetes source has not delivered its object).
func waitCopier(t *testing.T, c *testenv.Caddy, namespace string, timeout time.Duration, what string, ok func(remotewrite.Status) bool) remotewrite.Status {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		s := rwStatus(t, c, namespace)
		if len(s) == 1 && ok(s[0]) {
			return s[0]
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not %s after %s: %+v", namespace, what, timeout, s)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestRemoteWriteLeaseLostStopsSending takes the API server away from a
// copying leader: it can neither keep its progress where a successor would
// find it nor renew its Lease, so it must stop sending (fail closed) and
// say so; when the API server is back it takes the Lease again and resumes
// exactly where its stored progress ended.
func TestRemoteWriteLeaseLostStopsSending(t *testing.T) {
	api := testenv.StartKubeAPIServer(t) // its own: this test stops it
	e := newKubeEnv(t, api)
	const ns, ops = "team-l", "prom-tenant-lease"
	e.namespace(t, ns)
	e.namespace(t, ops)
	src := startSource(t, new(leaseExposition))
	recv := emptyPrometheus(t)
	rec := &recorder{target: recv.URL, acked: map[string]int{}}
	recSrv := httptest.NewServer(rec)
	t.Cleanup(recSrv.Close)
	applyLeaseCopy(t, e, ns, recSrv.URL)
	caddy := testenv.StartCaddy(t, leaseCopyConfig(t, api, ns, ops, src.URL, recSrv.URL, 5))
	waitCopier(t, caddy, ns, 60*time.Second, "copying as the leader", func(s remotewrite.Status) bool {
		return s.Leader != nil && *s.Leader && s.SamplesSent > 0
	})

	api.Stop()
	deposed := waitCopier(t, caddy, ns, 60*time.Second, "deposed", func(s remotewrite.Status) bool {
		return s.Leader != nil && !*s.Leader
	})
	assertLeaseHeld(t, caddy, deposed.Lease, 0)
	// Nothing more goes out while the API server is away: the source keeps
	// scraping, and the receiver gets none of it for a whole lease_duration
	// and more.
	acked := rec.acknowledged()
	time.Sleep(10 * time.Second)
	if now := rec.acknowledged(); now != acked {
		t.Errorf("a deposed leader kept sending: %d samples acknowledged after it said leader: false", now-acked)
	}

	api.Restart(t)
	back := time.Now()
	s := waitCopier(t, caddy, ns, 90*time.Second, "leading and copying 10s past the restart", func(s remotewrite.Status) bool {
		return s.Leader != nil && *s.Leader && s.CopiedUntil.After(back.Add(10*time.Second))
	})
	assertExactCopy(t, newAPI(t, src.URL, ""), newAPI(t, recv.URL, ""), `{__name__="app_requests_total",namespace="team-l"}`, relabel{}, s.CopiedUntil)
	// Taking the Lease back, it resends the batches its stored progress
	// recorded but never saw confirmed: at most one save's worth.
	if d := rec.duplicates(); len(d) > recordedBatches*5 {
		t.Errorf("%d samples acknowledged more than once (at most %d resent batches of 5 may be), e.g. %v", len(d), recordedBatches, d[:5])
	}
}
