package e2e

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prom-tenant/caddy-prom-tenant/internal/testenv"
)

// TestUpstreamErrorsInEnvelope drives bin/caddy with prom_tenant in front of
// upstreams that fail as real ones do: a load balancer answering its own
// HTML 502 page and a plain-text 503 (what Prometheus answers while it
// starts), both played by a second site of the same Caddy; an address where
// nothing listens; and the shared Prometheus refusing a query with its own
// JSON error. The tenant gets Prometheus's envelope every time, with the
// upstream's status, never the upstream's address; JSON errors of the
// upstream pass as they are; the access log keeps the cause.
func TestUpstreamErrorsInEnvelope(t *testing.T) {
	prom := testenv.SharedPrometheus(t)
	lb, starting, dead := testenv.FreePort(t), testenv.FreePort(t), testenv.FreePort(t)
	viaLB, viaStarting, viaDead := testenv.FreePort(t), testenv.FreePort(t), testenv.FreePort(t)
	accessLog := filepath.Join(t.TempDir(), "access.log")
	site := func(port, upstream int) string {
		return fmt.Sprintf(`
http://127.0.0.1:%d {
	log {
		output file %s
	}
	prom_tenant
	reverse_proxy 127.0.0.1:%d
}
`, port, accessLog, upstream)
	}
	p := startProxyTo(t, prom, tenantsDir, fmt.Sprintf(`
http://127.0.0.1:%d {
	header Content-Type "text/html"
	respond "<html><head><title>502 Bad Gateway</title></head><body><center><h1>502 Bad Gateway</h1></center><hr><center>nginx</center></body></html>" 502
}
http://127.0.0.1:%d {
	header Content-Type "text/plain; charset=utf-8"
	respond "Service Unavailable" 503
}
`, lb, starting)+site(viaLB, lb)+site(viaStarting, starting)+site(viaDead, dead))

	for _, tc := range []struct {
		name, url            string
		status               int
		errorType, wantError string
	}{
		{"load balancer page", fmt.Sprintf("http://127.0.0.1:%d/api/v1/query?query=up", viaLB), 502, "unavailable",
			"upstream answered 502 Bad Gateway: 502 Bad Gateway 502 Bad Gateway nginx"},
		{"upstream starting", fmt.Sprintf("http://127.0.0.1:%d/api/v1/series?match[]=up", viaStarting), 503, "unavailable",
			"upstream answered 503 Service Unavailable: Service Unavailable"},
		{"federate, upstream starting", fmt.Sprintf("http://127.0.0.1:%d/federate?match[]=up", viaStarting), 503, "unavailable",
			"upstream answered 503 Service Unavailable: Service Unavailable"},
		{"nothing listens", fmt.Sprintf("http://127.0.0.1:%d/api/v1/query?query=up", viaDead), 502, "unavailable",
			"upstream unavailable: the upstream Prometheus could not be reached"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := request(t, "GET", tc.url, "team-a", "")
			req.Header.Set("Accept-Encoding", "gzip") // as Grafana sends it
			status, env, h := do(t, req)
			if status != tc.status || env.Status != "error" || env.ErrorType != tc.errorType || env.Error != tc.wantError {
				t.Errorf("got %d %+v, want %d %s %q", status, env, tc.status, tc.errorType, tc.wantError)
			}
			if h.Get("Content-Type") != "application/json" {
				t.Errorf("Content-Type %q", h.Get("Content-Type"))
			}
			if strings.Contains(env.Error, fmt.Sprint(dead)) {
				t.Errorf("the answer names the upstream's address: %q", env.Error)
			}
		})
	}

	// The upstream's own JSON error passes through as Prometheus wrote it.
	q := "/api/v1/query_range?query=up&start=0&end=100000&step=1"
	direct, err := http.Get("http://" + prom.Addr + strings.Replace(q, "query=up", "query=up%7Bnamespace%3D%22team-a%22%7D", 1))
	if err != nil {
		t.Fatal(err)
	}
	want, _ := io.ReadAll(direct.Body)
	direct.Body.Close()
	resp, err := http.DefaultClient.Do(request(t, "GET", p.url+q, "team-a", ""))
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if direct.StatusCode != 400 || resp.StatusCode != direct.StatusCode || string(got) != string(want) {
		t.Errorf("JSON error of the upstream: got %d %s, want %d %s as Prometheus answered it", resp.StatusCode, got, direct.StatusCode, want)
	}

	// The operator's access log names the cause the tenant is not told.
	log, err := os.ReadFile(accessLog)
	if err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprintf(`"upstream_error":"dial tcp 127.0.0.1:%d: connect: connection refused"`, dead); !strings.Contains(string(log), want) {
		t.Errorf("access log has no %s:\n%s", want, log)
	}
}
