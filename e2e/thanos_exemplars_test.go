package e2e

import (
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/prom-tenant/caddy-prom-tenant/internal/testenv"
)

// TestThanosExemplars replays Grafana's exemplar requests through prom_tenant
// → Query Frontend → Query → sidecars of an HA pair that scraped an
// application exposing exemplars (backfilled data carries none): each tenant
// gets what a Prometheus that scraped only its series answers. Thanos Query
// deduplicates exemplars by the replica label as it does series.
func TestThanosExemplars(t *testing.T) {
	t.Parallel() // see "Parallel tests" in main_test.go
	prom3 := testenv.Prometheus3Binary(t)
	reg := loadPolicies(t, tenantsDir)
	ts := time.Now().Truncate(time.Second)
	exporter := startExemplarExporter(t, reg, ts)
	// As TestGrafanaMetadataAndExemplars scrapes: the job named as the
	// series' own, so that honor_labels changes nothing.
	scrapeConfigs := func(path string) string {
		return fmt.Sprintf(`scrape_configs:
  - job_name: api
    honor_labels: true
    scrape_interval: 1s
    metrics_path: %s
    static_configs:
      - targets: [%q]
`, path, strings.TrimPrefix(exporter.URL, "http://"))
	}
	exemplarStorage := []string{"--enable-feature=exemplar-storage"}
	th := testenv.StartThanos(t, testenv.ThanosOptions{PrometheusBinary: prom3,
		PrometheusArgs: exemplarStorage, PairScrapeConfigs: scrapeConfigs("/all")})
	p := startThanosProxy(t, th.Frontend.Addr, tenantsDir, thanosOptions(t))

	window := url.Values{"start": {fmt.Sprint(ts.Add(-5 * time.Minute).Unix())}, "end": {fmt.Sprint(ts.Add(5 * time.Minute).Unix())}}
	exemplars := func(query string) url.Values {
		v := url.Values{"query": {query}}
		for k, vs := range window {
			v[k] = vs
		}
		return v
	}
	reqs := []grafanaRequest{
		{name: "exemplars of a counter", source: "pkg/promlib/client QueryExemplars", method: "POST", path: "/api/v1/query_exemplars",
			params: exemplars(`sum by (job) (rate(http_requests_total[1m0s]))`), headers: panelHeaders},
		{name: "exemplars of a histogram", source: "pkg/promlib/client QueryExemplars", method: "POST", path: "/api/v1/query_exemplars",
			params: exemplars(`histogram_quantile(0.99, sum by (le) (rate(http_request_duration_seconds_bucket[1m0s])))`), headers: panelHeaders},
		{name: "exemplars of a union", source: "pkg/promlib/client QueryExemplars", method: "POST", path: "/api/v1/query_exemplars",
			params: exemplars(`sum(rate({namespace=~"team-.*"}[1m0s]))`), headers: panelHeaders},
	}
	// ready waits until the exemplars of both tenants can be read at url.
	ready := func(url, want string) {
		t.Helper()
		for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(300 * time.Millisecond) {
			_, ex := reqs[0].send(t, url, "", false)
			if strings.Contains(string(ex.Data), want) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s has no exemplars %s after 30s: %s", url, want, ex.Data)
			}
		}
	}
	ready(th.Query.URL, "team-b-0001")
	for _, tenant := range []string{"team-a", "team-b"} {
		t.Run(tenant, func(t *testing.T) {
			oracle := testenv.StartPrometheusWith(t, testenv.PrometheusOptions{Binary: prom3, Args: exemplarStorage,
				Config: "global:\n  scrape_interval: 15s\n" + scrapeConfigs("/tenant/"+tenant)})
			ready(oracle.URL, tenant+"-0001") // so the counter's exemplars are compared, not two empty answers
			checkRequestsSeeOracle(t, reqs, p.url, oracle.URL, tenant)
		})
	}
}
