package promtenant

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// BenchmarkServeHTTP measures the per-request work of the handler: resolve
// the tenant, read and check the form, rewrite, rebuild. The next handler
// does nothing, so this is what prom_tenant adds in front of reverse_proxy.
func BenchmarkServeHTTP(b *testing.B) {
	h := newTestHandler(b)
	next := caddyhttp.HandlerFunc(func(http.ResponseWriter, *http.Request) error { return nil })
	for _, tc := range []struct{ name, method, target, body string }{
		{"GET up", http.MethodGet, "/api/v1/query?query=up&time=1700000000", ""},
		{"POST dashboard", http.MethodPost, "/api/v1/query_range", url.Values{
			"query": {`sum by (job, code) (rate(http_requests_total{code=~"5.."}[5m]))`},
			"start": {"1700000000"}, "end": {"1700003600"}, "step": {"15"}}.Encode()},
		{"GET series", http.MethodGet, "/api/v1/series?match[]=up&start=1700000000", ""},
		// The same request without prom_tenant: the cost of the benchmark's
		// own request set-up, to subtract from the others.
		{"baseline GET up", http.MethodGet, "/api/v1/query?query=up&time=1700000000", ""},
	} {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
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
		})
	}
}

func serveOrBaseline(h *Handler, w http.ResponseWriter, r *http.Request, next caddyhttp.Handler, name string) error {
	if strings.HasPrefix(name, "baseline") {
		return next.ServeHTTP(w, r)
	}
	return h.ServeHTTP(w, r, next)
}
