package e2e

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prom-tenant/caddy-prom-tenant/internal/testenv"
	"github.com/prom-tenant/caddy-prom-tenant/remotewrite"
)

// extExposition holds, for each of team-a and team-b, series with a stored
// cluster="eu" (the source's external value), with cluster="us", and
// without; one also stores replica="r0". app_requests_total{path="/y"} and
// the one without a path are returned by remote read in the opposite order
// of their stored labels (the added replica sorts after path).
type extExposition struct {
	mu sync.Mutex
	n  int
}

func (e *extExposition) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	e.mu.Lock()
	e.n++
	n := e.n
	e.mu.Unlock()
	w.Header().Set("Content-Type", "text/plain; version=0.0.4")
	for i, ns := range []string{"team-a", "team-b"} {
		k := 10 * (i + 1)
		fmt.Fprintf(w, "app_requests_total{cluster=\"eu\",namespace=%q,path=\"/x\"} %d\n", ns, k*n)
		fmt.Fprintf(w, "app_requests_total{namespace=%q,path=\"/y\"} %d\n", ns, k*n+1)
		fmt.Fprintf(w, "app_requests_total{namespace=%q} %d\n", ns, k*n+2)
		fmt.Fprintf(w, "app_requests_total{cluster=\"us\",namespace=%q,path=\"/z\"} %d\n", ns, k*n+3)
		fmt.Fprintf(w, "app_temperature_celsius{cluster=\"eu\",namespace=%q,replica=\"r0\"} %g\n", ns, 20+float64(n%7)*0.25)
		fmt.Fprintf(w, "app_temperature_celsius{namespace=%q,sensor=\"s1\"} %g\n", ns, 10+float64(n%5)*0.5)
	}
}

// TestRemoteWriteSourceExternalLabels copies from a Prometheus with
// external labels {cluster: eu, replica: r0}: each copy is exactly what the
// tenant queries through the proxy (the query API, which has no external
// labels), for a policy on cluster (team-a) and one on the namespace only
// (team-b). A naive read would copy team-a the series without a stored
// cluster (the handler rewrites cluster="eu" to cluster="") and add both
// external labels to every series.
func TestRemoteWriteSourceExternalLabels(t *testing.T) {
	t.Parallel() // see "Parallel tests" in main_test.go
	t.Run("prometheus 2.42", func(t *testing.T) { testExternalLabelsCopy(t, "") })
	t.Run("prometheus 3", func(t *testing.T) { testExternalLabelsCopy(t, testenv.Prometheus3Binary(t)) })
}

func testExternalLabelsCopy(t *testing.T, binary string) {
	target := httptest.NewServer(new(extExposition))
	t.Cleanup(target.Close)
	src := testenv.StartPrometheusWith(t, testenv.PrometheusOptions{
		Keep:   func(map[string]string) bool { return false },
		Binary: binary,
		Config: fmt.Sprintf(`global:
  scrape_interval: 1s
  external_labels: {cluster: eu, replica: r0}
scrape_configs:
- job_name: apps
  honor_labels: true
  static_configs:
  - targets: [%q]
`, strings.TrimPrefix(target.URL, "http://")),
	})
	srcAPI := newAPI(t, src.URL, "")
	recvA, recvB := emptyPrometheus(t), emptyPrometheus(t)

	tenants := t.TempDir()
	metrics := `["app_requests_total", "app_temperature_celsius"]`
	writeFile(t, filepath.Join(tenants, "team-a.yaml"), fmt.Sprintf(metricAccessTemplate, "eu-only", "team-a", metrics,
		fmt.Sprintf("  labelSelectors: {cluster: eu}\n  remoteWrite:\n    enabled: true\n    interval: 5s\n    target: {type: remote_write, remoteWrite: {url: %q}}\n", recvA.URL+"/api/v1/write")))
	writeFile(t, filepath.Join(tenants, "team-b.yaml"), fmt.Sprintf(metricAccessTemplate, "all", "team-b", metrics,
		fmt.Sprintf("  remoteWrite:\n    enabled: true\n    interval: 5s\n    target: {type: remote_write, remoteWrite: {url: %q}}\n", recvB.URL+"/api/v1/write")))
	port := testenv.FreePort(t)
	c := testenv.StartCaddy(t, fmt.Sprintf(`{
	admin 127.0.0.1:%d
	prom_tenancy {
		directory %s
	}
	prom_remote_write %s {
		interval 5s
		read_delay 1s
		initial_lookback 1m
		allow_url %s %s
	}
}

http://127.0.0.1:%d {
	prom_tenant
	reverse_proxy %s
}
`, testenv.FreePort(t), tenants, src.URL, recvA.URL, recvB.URL, port, src.Addr))
	proxy := fmt.Sprintf("http://127.0.0.1:%d", port)

	// The setup proves something: team-a's view leaves out series a naive
	// read would copy, and stores cluster itself.
	time.Sleep(8 * time.Second)
	now := time.Now()
	if got := instant(t, srcAPI, `{__name__=~"app_.+",namespace="team-a"}`, now); len(got) != 6 {
		t.Fatalf("source holds %d team-a series, want 6: %v", len(got), got)
	}
	viewA := instant(t, newAPI(t, proxy, "team-a"), `{__name__=~".+"}`, now)
	if len(viewA) != 2 {
		t.Fatalf("team-a sees %d series, want the 2 with a stored cluster=\"eu\": %v", len(viewA), viewA)
	}
	replicas := 0
	for k := range viewA {
		if !strings.Contains(k, `cluster="eu"`) {
			t.Errorf("team-a's view holds %s", k)
		}
		if strings.Contains(k, `replica="r0"`) {
			replicas++ // stored, so copied
		}
	}
	if replicas != 1 {
		t.Errorf("team-a's view has %d series with a stored replica, want 1: %v", replicas, viewA)
	}

	for ns, recv := range map[string]*testenv.Prometheus{"team-a": recvA, "team-b": recvB} {
		t0 := time.Now().Add(5 * time.Second) // enough samples to prove something
		s := waitStatus(t, c, ns, 60*time.Second, "copied past "+t0.Format(time.TimeOnly), func(s remotewrite.Status) bool {
			return s.LastError == "" && s.CopiedUntil.After(t0)
		})
		assertExactCopy(t, newAPI(t, proxy, ns), newAPI(t, recv.URL, ""), `{__name__=~".+"}`, relabel{}, s.CopiedUntil)
	}
}

// TestRemoteWriteSourceConfigUnreadable: a source that does not answer
// /api/v1/status/config is refused, with the reason: its external labels,
// and so what its remote read adds and rewrites, cannot be known.
func TestRemoteWriteSourceConfigUnreadable(t *testing.T) {
	src := startSource(t, new(exposition))
	u, err := url.Parse(src.URL)
	if err != nil {
		t.Fatal(err)
	}
	rp := httputil.NewSingleHostReverseProxy(u)
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/api/v1/status/config" {
			http.Error(w, "forbidden", http.StatusForbidden)
			return
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(front.Close)
	recv := emptyPrometheus(t)
	tenants := t.TempDir()
	writeFile(t, filepath.Join(tenants, "team-a.yaml"), fmt.Sprintf(metricAccessTemplate, "copy", "team-a", `["app_requests_total"]`,
		fmt.Sprintf("  remoteWrite:\n    enabled: true\n    target: {type: remote_write, remoteWrite: {url: %q}}\n", recv.URL+"/api/v1/write")))
	c := testenv.StartCaddy(t, fmt.Sprintf(`{
	admin 127.0.0.1:%d
	prom_tenancy {
		directory %s
	}
	prom_remote_write %s {
		interval 5s
		read_delay 1s
		allow_url %s
	}
}
`, testenv.FreePort(t), tenants, front.URL, recv.URL))
	s := waitStatus(t, c, "team-a", 30*time.Second, "failing", func(s remotewrite.Status) bool { return s.LastError != "" })
	if !strings.Contains(s.LastError, "reading the source's configuration (for its external labels)") || !strings.Contains(s.LastError, "403") || s.SamplesSent != 0 {
		t.Errorf("status %+v", s)
	}
}
