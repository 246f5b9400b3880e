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

// metadataEntry is one entry of /api/v1/metadata.
type metadataEntry struct {
	Type string `json:"type"`
	Help string `json:"help"`
	Unit string `json:"unit"`
}

// getMetadata asks base for /api/v1/metadata with query as tenant; the
// entries of each family are sorted (Prometheus orders them at random).
func getMetadata(t *testing.T, base, tenant, query string) map[string][]metadataEntry {
	t.Helper()
	status, env, _ := do(t, request(t, "GET", base+"/api/v1/metadata"+query, tenant, ""))
	var data map[string][]metadataEntry
	if err := json.Unmarshal(env.Data, &data); status != http.StatusOK || err != nil {
		t.Fatalf("%s metadata%s: %d %+v", tenant, query, status, env)
	}
	for _, es := range data {
		slices.SortFunc(es, func(a, b metadataEntry) int { return strings.Compare(fmt.Sprint(a), fmt.Sprint(b)) })
	}
	return data
}

// sharedFamilyTargets are exporters of two tenants that share the family
// http_requests, as separate scrape targets. Prometheus's /api/v1/metadata
// merges metadata over all targets, so only the targets can tell whose HELP
// is whose.
var sharedFamilyTargets = map[string][]omFamily{
	"a1": {
		{name: "http_requests", typ: "counter", help: "Requests served.", samples: []omSample{
			{name: "http_requests_total", labels: map[string]string{"code": "200"}, value: "7"},
		}},
		{name: "http_request_duration_seconds", typ: "histogram", help: "Request latency.", samples: []omSample{
			{name: "http_request_duration_seconds_bucket", labels: map[string]string{"le": "+Inf"}, value: "2"},
			{name: "http_request_duration_seconds_sum", labels: map[string]string{}, value: "0.3"},
			{name: "http_request_duration_seconds_count", labels: map[string]string{}, value: "2"},
		}},
	},
	"a2": {
		{name: "http_requests", typ: "counter", help: "Requests served by the v2 API.", samples: []omSample{
			{name: "http_requests_total", labels: map[string]string{"code": "500"}, value: "1"},
		}},
		{name: "http_request_duration_seconds", typ: "histogram", help: "Request latency.", samples: []omSample{
			{name: "http_request_duration_seconds_bucket", labels: map[string]string{"le": "+Inf"}, value: "1"},
			{name: "http_request_duration_seconds_sum", labels: map[string]string{}, value: "0.1"},
			{name: "http_request_duration_seconds_count", labels: map[string]string{}, value: "1"},
		}},
	},
	"b1": {
		{name: "http_requests", typ: "counter", help: "team-b internal: billing-api v7 at db.team-b.svc:5432", samples: []omSample{
			{name: "http_requests_total", labels: map[string]string{"code": "200"}, value: "3"},
		}},
		{name: "http_request_duration_seconds", typ: "histogram", help: "team-b billing latency.", samples: []omSample{
			{name: "http_request_duration_seconds_bucket", labels: map[string]string{"le": "+Inf"}, value: "1"},
			{name: "http_request_duration_seconds_sum", labels: map[string]string{}, value: "0.2"},
			{name: "http_request_duration_seconds_count", labels: map[string]string{}, value: "1"},
		}},
		{name: "billing_invoices", typ: "gauge", help: "team-b invoices due.", samples: []omSample{
			{name: "billing_invoices", labels: map[string]string{}, value: "12"},
		}},
	},
	// A target with honor_labels whose series name another job: its series
	// do not carry the target's labels, so no series can be traced to it.
	"pushed": {
		{name: "batch_runs", typ: "counter", help: "Runs pushed by a batch job.", samples: []omSample{
			{name: "batch_runs_total", labels: map[string]string{"job": "batch"}, value: "4"},
		}},
	},
}

// TestMetadataOnlyOfTheTenantsTargets is the regression test of a leak:
// team-a has series of the family http_requests, and so did the proxy give it
// team-b's HELP of that family (and the number of other exporters). A
// tenant gets metadata only of targets whose series of that family it can
// see, merged as Prometheus merges it: the answer equals that of an oracle
// Prometheus scraping only team-a's targets. Upstream and oracles are
// Debian's 2.42 and a 3.x.
func TestMetadataOnlyOfTheTenantsTargets(t *testing.T) {
	t.Parallel() // see "Parallel tests" in main_test.go
	t.Run("2.42", func(t *testing.T) { testMetadataOnlyOfTheTenantsTargets(t, "") })
	t.Run("3.x", func(t *testing.T) { testMetadataOnlyOfTheTenantsTargets(t, testenv.Prometheus3Binary(t)) })
}

func testMetadataOnlyOfTheTenantsTargets(t *testing.T, binary string) {
	exporter := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		families, ok := sharedFamilyTargets[strings.TrimPrefix(r.URL.Path, "/")]
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/openmetrics-text; version=1.0.0; charset=utf-8")
		_, _ = io.WriteString(w, omExposition(families, time.Now(), nil))
	}))
	t.Cleanup(exporter.Close)
	addr := strings.TrimPrefix(exporter.URL, "http://")
	// One scrape job per exporter (each path is a target of its own); the
	// namespace is a target label, as Kubernetes service discovery sets it.
	job := func(name, namespace string, honor bool) string {
		return fmt.Sprintf(`  - job_name: %s
    honor_labels: %t
    metrics_path: /%s
    static_configs:
      - targets: [%q]
        labels: {namespace: %s}
`, name, honor, name, addr, namespace)
	}
	scraping := func(jobs ...string) *testenv.Prometheus {
		return testenv.StartPrometheusWith(t, testenv.PrometheusOptions{Binary: binary, Config: "global:\n  scrape_interval: 1s\nscrape_configs:\n" + strings.Join(jobs, "")})
	}
	shared := scraping(job("a1", "team-a", false), job("a2", "team-a", false), job("b1", "team-b", false), job("pushed", "team-a", true))
	// The oracle leaves out the target with honor_labels: the proxy cannot
	// tell whose its metadata is, and gives it to nobody.
	oracle := scraping(job("a1", "team-a", false), job("a2", "team-a", false))
	oracleB := scraping(job("b1", "team-b", false))

	// team-b's policy is a union of two selectors that do not merge: the
	// proxy's query of its series is one too.
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "tenants.yaml"), `apiVersion: observability.ethos.io/v1alpha1
kind: MetricAccess
metadata: {name: app, namespace: team-a}
spec: {metricIsolation: true, metrics: [http_requests_total, 'http_request_duration_seconds_.*', batch_runs_total]}
---
apiVersion: observability.ethos.io/v1alpha1
kind: MetricAccess
metadata: {name: http, namespace: team-b}
spec: {metricIsolation: true, metrics: ['http_.*']}
---
apiVersion: observability.ethos.io/v1alpha1
kind: MetricAccess
metadata: {name: billing, namespace: team-b}
spec: {metricIsolation: true, labelSelectors: {job: b1}, metrics: ['billing_.*']}
`)
	capPort := freePort(t)
	p := startProxyTo(t, shared, dir, fmt.Sprintf(`
http://127.0.0.1:%d {
	prom_tenant {
		max_metadata_response 256B
	}
	reverse_proxy {prometheus}
}
`, capPort))

	// Every Prometheus must have scraped every target (metadata and series).
	ready := func(prom *testenv.Prometheus, families, variants int) {
		t.Helper()
		for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(200 * time.Millisecond) {
			md := getMetadata(t, prom.URL, "", "")
			if len(md) >= families && len(md["http_requests"]) >= variants {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s has not scraped every target after 20s: %v", prom.URL, md)
			}
		}
	}
	ready(shared, 4, 3)
	ready(oracle, 2, 2)
	ready(oracleB, 3, 1)

	for _, query := range []string{"", "?metric=http_requests", "?metric=http_request_duration_seconds", "?metric=billing_invoices", "?metric=batch_runs", "?limit=0", "?limit=-1"} {
		got, want := getMetadata(t, p.url, "team-a", query), getMetadata(t, oracle.URL, "", query)
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("team-a metadata%s:\nproxy:  %v\noracle: %v", query, got, want)
		}
		gotB, wantB := getMetadata(t, p.url, "team-b", query), getMetadata(t, oracleB.URL, "", query)
		if fmt.Sprint(gotB) != fmt.Sprint(wantB) {
			t.Errorf("team-b metadata%s:\nproxy:  %v\noracle: %v", query, gotB, wantB)
		}
		for _, es := range got {
			for _, e := range es {
				if strings.Contains(e.Help, "team-b") {
					t.Errorf("team-a metadata%s has team-b's HELP %q", query, e.Help)
				}
			}
		}
	}

	// Over max_metadata_response, the sub-request is cut off (reverse_proxy
	// aborts its copy) and the tenant told which option raises the cap;
	// Caddy serves on.
	status, env, _ := do(t, request(t, "GET", fmt.Sprintf("http://127.0.0.1:%d/api/v1/metadata", capPort), "team-a", ""))
	if want := "the upstream's answer to /api/v1/targets/metadata is larger than max_metadata_response (256 B): ask for one metric family with ?metric=<name>, or raise max_metadata_response in prom_tenant"; status != http.StatusUnprocessableEntity || env.ErrorType != "execution" || env.Error != want {
		t.Errorf("over the cap: %d %+v, want 422 %q", status, env, want)
	}

	// limit and limit_per_metric count after the filter: a tenant-only
	// Prometheus picks any limit families and any limit_per_metric entries
	// of each (its order is a map's), so the check is on counts and subsets.
	all := getMetadata(t, oracle.URL, "", "")
	subset := func(query string, families, perFamily int) {
		t.Helper()
		got := getMetadata(t, p.url, "team-a", query)
		if len(got) != families {
			t.Errorf("team-a metadata%s has %d families, want %d: %v", query, len(got), families, got)
		}
		for f, es := range got {
			if len(es) != min(perFamily, len(all[f])) {
				t.Errorf("team-a metadata%s: %s has %d entries, want %d: %v", query, f, len(es), min(perFamily, len(all[f])), es)
			}
			for _, e := range es {
				if !slices.Contains(all[f], e) {
					t.Errorf("team-a metadata%s: %s has %v, not the tenant's", query, f, e)
				}
			}
		}
	}
	subset("?limit=1", 1, 2)
	subset("?limit_per_metric=1", 2, 1)
	subset("?metric=http_requests&limit_per_metric=1", 1, 1)
	subset("?limit=2&limit_per_metric=1", 2, 1)
}
