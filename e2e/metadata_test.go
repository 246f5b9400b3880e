package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prom-tenant/caddy-prom-tenant/internal/testenv"
)

// TestMetadataThroughCaddy scrapes an exporter with metrics of two tenants
// (metadata exists only for scraped metrics) and checks that each tenant gets
// metadata exactly for the metric names it has series of.
func TestMetadataThroughCaddy(t *testing.T) {
	exporter := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, `# HELP app_requests_total Requests served.
# TYPE app_requests_total counter
app_requests_total{namespace="team-a"} 1
# HELP secret_bytes Something only team-b may know of.
# TYPE secret_bytes gauge
secret_bytes{namespace="team-b"} 42
`)
	}))
	t.Cleanup(exporter.Close)
	prom := testenv.StartPrometheusWith(t, testenv.PrometheusOptions{Config: fmt.Sprintf(`global:
  scrape_interval: 1s
scrape_configs:
  - job_name: app
    honor_labels: true
    static_configs:
      - targets: [%q]
`, strings.TrimPrefix(exporter.URL, "http://"))})

	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "tenants.yaml"), `apiVersion: observability.ethos.io/v1alpha1
kind: MetricAccess
metadata: {name: app, namespace: team-a}
spec: {metricIsolation: true, metrics: [app_requests_total]}
---
apiVersion: observability.ethos.io/v1alpha1
kind: MetricAccess
metadata: {name: secret, namespace: team-b}
spec: {metricIsolation: true, metrics: [secret_bytes]}
`)
	p := startProxyTo(t, prom, dir, "")

	names := func(base, tenant, query string) []string {
		t.Helper()
		_, env, _ := do(t, request(t, "GET", base+"/api/v1/metadata"+query, tenant, ""))
		var data map[string]json.RawMessage
		if err := json.Unmarshal(env.Data, &data); err != nil {
			t.Fatalf("metadata %s: %+v", query, env)
		}
		var out []string
		for n := range data {
			out = append(out, n)
		}
		slices.Sort(out)
		return out
	}
	for deadline := time.Now().Add(20 * time.Second); !slices.Contains(names(prom.URL, "", ""), "secret_bytes"); time.Sleep(200 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("Prometheus has no metadata for the exporter's metrics after 20s")
		}
	}
	for _, tc := range []struct{ tenant, query, want string }{
		{"team-a", "", "[app_requests_total]"},
		{"team-b", "", "[secret_bytes]"},
		{"team-a", "?metric=secret_bytes", "[]"},
		{"team-b", "?metric=secret_bytes", "[secret_bytes]"},
		{"team-b", "?limit=1", "[secret_bytes]"},
	} {
		if got := fmt.Sprint(names(p.url, tc.tenant, tc.query)); got != tc.want {
			t.Errorf("%s metadata%s = %s, want %s", tc.tenant, tc.query, got, tc.want)
		}
	}
}
