package promtenant

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// BenchmarkServeHTTP measures the per-request work of the handler: resolve
// the tenant, read and check the form, rewrite, rebuild. The next handler
// does nothing, so this is what prom_tenant adds in front of reverse_proxy.
// Each request repeats, as a dashboard's do, so the rewrite comes from the
// cache; the POSTs also run with no cache ("no cache/"), the cost of a
// query seen for the first time.
func BenchmarkServeHTTP(b *testing.B) {
	h := newTestHandler(b)
	next := caddyhttp.HandlerFunc(func(http.ResponseWriter, *http.Request) error { return nil })
	for _, tc := range []struct{ name, method, target, body string }{
		{"GET up", http.MethodGet, "/api/v1/query?query=up&time=1700000000", ""},
		{"POST dashboard", http.MethodPost, "/api/v1/query_range", url.Values{
			"query": {`sum by (job, code) (rate(http_requests_total{code=~"5.."}[5m]))`},
			"start": {"1700000000"}, "end": {"1700003600"}, "step": {"15"}}.Encode()},
		{"GET series", http.MethodGet, "/api/v1/series?match[]=up&start=1700000000", ""},
		{"GET name values", http.MethodGet, "/api/v1/label/__name__/values?start=1700000000", ""},
		// A panel with a multi-value variable expanded into a 4 KB regex.
		{"POST 4 KB query", http.MethodPost, "/api/v1/query", url.Values{
			"query": {`sum by (pod) (rate(http_requests_total{job="api",pod=~"` + longRegex(4000) + `"}[5m]))`},
			"time":  {"1700000000"}}.Encode()},
		// The same request without prom_tenant: the cost of the benchmark's
		// own request set-up, to subtract from the others.
		{"baseline GET up", http.MethodGet, "/api/v1/query?query=up&time=1700000000", ""},
	} {
		for _, cache := range []string{"", "no cache/"} {
			if cache != "" && (strings.HasPrefix(tc.name, "baseline") || tc.method != http.MethodPost) {
				continue
			}
			h := h
			if cache != "" {
				h = newTestHandler(b)
				h.enforcer = h.enforcer.WithCache(0)
			}
			b.Run(cache+tc.name, func(b *testing.B) {
				b.ReportAllocs()
				cpu := processCPU()
				for b.Loop() {
					r := httptest.NewRequest(tc.method, tc.target, strings.NewReader(tc.body))
					r.Header.Set("X-Tenant-Namespace", "team-a")
					r.Header.Set("Accept-Encoding", "gzip")
					if tc.method == http.MethodPost {
						r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
					}
					w := httptest.NewRecorder()
					r = caddyhttp.PrepareRequest(r, caddy.NewReplacer(), w, nil)
					if err := serveOrBaseline(h, w, r, next, tc.name); err != nil || w.Code != http.StatusOK {
						b.Fatalf("ServeHTTP: %v, status %d %s", err, w.Code, w.Body)
					}
				}
				b.ReportMetric(float64((processCPU()-cpu).Nanoseconds())/float64(b.N), "cpu-ns/op")
			})
		}
	}
}

// processCPU is the process's user and system CPU time so far. Per op it
// is steadier than ns/op on a machine that others share: time spent
// waiting for a core does not count.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// longRegex is an alternation of pod names of about n bytes.
func longRegex(n int) string {
	var b strings.Builder
	for i := 0; b.Len() < n; i++ {
		if i > 0 {
			b.WriteByte('|')
		}
		fmt.Fprintf(&b, "api-%d", i)
	}
	return b.String()
}

func serveOrBaseline(h *Handler, w http.ResponseWriter, r *http.Request, next caddyhttp.Handler, name string) error {
	if strings.HasPrefix(name, "baseline") {
		return next.ServeHTTP(w, r)
	}
	return h.ServeHTTP(w, r, next)
}
