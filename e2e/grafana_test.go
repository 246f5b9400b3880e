package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/prom-tenant/caddy-prom-tenant/internal/exampledata"
	"github.com/prom-tenant/caddy-prom-tenant/internal/testenv"
	"github.com/prom-tenant/caddy-prom-tenant/tenancy"
)

// grafanaRequest is one request exactly as Grafana's Prometheus data source
// sends it to the data source URL (Grafana's backend is the client: queries
// go through pkg/promlib/client, browser lookups through the resource
// handler, pkg/promlib/client.QueryResource).
type grafanaRequest struct {
	name   string
	source string // where in Grafana the request comes from
	method string
	path   string
	params url.Values // in the URL for GET, the form body for POST
	// headers beyond the ones every Grafana request carries (grafanaHeaders).
	headers map[string]string
	// leaks is whether the shared Prometheus answers this request with other
	// tenants' series: then the proxy's answer must not name another tenant,
	// and the unproxied answer must, or the check proves nothing.
	leaks bool
}

// grafanaHeaders are the headers Grafana's backend sets on data source
// requests: its User-Agent and the headers of its tracing-header middleware
// (pkg/services/pluginsintegration/clientmiddleware/tracing_header_middleware.go).
// X-Tenant-Namespace stands for the data source's custom HTTP header (or
// basic auth) that names the tenant.
var grafanaHeaders = map[string]string{
	"User-Agent":       "Grafana/11.3.0",
	"X-Grafana-Org-Id": "1",
	"X-Datasource-Uid": "prom-tenant",
}

// panelHeaders are added for a dashboard panel's queries.
var panelHeaders = map[string]string{
	"X-Dashboard-Uid":   "prom-tenant-e2e",
	"X-Panel-Id":        "2",
	"X-Panel-Plugin-Id": "timeseries",
	"X-Query-Group-Id":  "f1b8a5b2-6c1e-4d5e-9a3c-1b2c3d4e5f60",
}

// grafanaRequests are the requests of the Prometheus data source, built for
// the shared Prometheus's window. start and end are what Grafana's metric
// browser sends (whole seconds), at is an instant query's time.
func grafanaRequests(start, end time.Time) []grafanaRequest {
	s, e := fmt.Sprint(start.Unix()), fmt.Sprint(end.Unix())
	at := fmt.Sprintf("%d.123", end.Add(-time.Minute).Unix()) // formatTime keeps fractions
	const limit = "40000"                                     // DEFAULT_SERIES_LIMIT
	rangeStart := fmt.Sprint(end.Add(-30 * time.Minute).Unix())
	return []grafanaRequest{
		// Save & test: healthcheck.go runs the instant query 1+1 over the time
		// range 1s..4s (so time=4), POST with a form body (client.QueryInstant,
		// createQueryRequest), then GET /api/v1/status/buildinfo (heuristics.go).
		{name: "health check", source: "pkg/promlib/healthcheck.go", method: "POST", path: "/api/v1/query",
			params: url.Values{"query": {"1+1"}, "time": {"4"}}},
		{name: "buildinfo", source: "pkg/promlib/heuristics.go getBuildInfo", method: "GET", path: "/api/v1/status/buildinfo"},

		// Panels: client.QueryRange / QueryInstant, POST (the default httpMethod),
		// $__rate_interval already replaced by the backend (a Go duration string),
		// timeout from the data source's queryTimeout.
		{name: "panel range query", source: "pkg/promlib/client QueryRange", method: "POST", path: "/api/v1/query_range",
			params: url.Values{"query": {`sum by (namespace, job) (rate(http_requests_total[1m0s]))`},
				"start": {rangeStart}, "end": {e}, "step": {"15"}, "timeout": {"30s"}},
			headers: panelHeaders, leaks: true},
		{name: "panel range query up", source: "pkg/promlib/client QueryRange", method: "POST", path: "/api/v1/query_range",
			params:  url.Values{"query": {`up`}, "start": {rangeStart}, "end": {e}, "step": {"60"}},
			headers: panelHeaders, leaks: true},
		{name: "panel instant query", source: "pkg/promlib/client QueryInstant", method: "POST", path: "/api/v1/query",
			params:  url.Values{"query": {`count by (namespace) (up)`}, "time": {at}},
			headers: panelHeaders, leaks: true},
		{name: "exemplars", source: "pkg/promlib/client QueryExemplars", method: "POST", path: "/api/v1/query_exemplars",
			params:  url.Values{"query": {`histogram_quantile(0.99, sum by (le) (rate(http_request_duration_seconds_bucket[1m0s])))`}, "start": {rangeStart}, "end": {e}},
			headers: panelHeaders},
		// datasource.ts areExemplarsAvailable: query "test", start and end in
		// milliseconds, through the resource handler (POST: the path contains api/v1/query).
		{name: "exemplars available", source: "datasource.ts areExemplarsAvailable", method: "POST", path: "/api/v1/query_exemplars",
			params: url.Values{"query": {"test"}, "start": {fmt.Sprint(end.Add(-30 * time.Minute).UnixMilli())}, "end": {fmt.Sprint(end.UnixMilli())}}},

		// Metric browser and code completion (resource_clients.ts LabelsApiClient):
		// label values are always GET (client.endpointsSupportOnlyGet), labels and
		// series take the configured method.
		{name: "metric names", source: "resource_clients.ts queryMetrics", method: "GET", path: "/api/v1/label/__name__/values",
			params: url.Values{"limit": {limit}, "start": {s}, "end": {e}}},
		{name: "label names", source: "resource_clients.ts queryLabelKeys", method: "POST", path: "/api/v1/labels",
			params: url.Values{"limit": {limit}, "start": {s}, "end": {e}}},
		{name: "label names of a metric", source: "resource_clients.ts queryLabelKeys(match)", method: "POST", path: "/api/v1/labels",
			params: url.Values{"limit": {limit}, "start": {s}, "end": {e}, "match[]": {`{__name__="http_requests_total"}`}}},
		{name: "label values of a metric", source: "resource_clients.ts queryLabelValues(match)", method: "GET", path: "/api/v1/label/instance/values",
			params: url.Values{"limit": {limit}, "start": {s}, "end": {e}, "match[]": {`{__name__="up"}`}}, leaks: true},
		{name: "series, match all", source: "resource_clients.ts SeriesApiClient.querySeries(MATCH_ALL_LABELS)", method: "POST", path: "/api/v1/series",
			params: url.Values{"limit": {limit}, "start": {s}, "end": {e}, "match[]": {`{__name__!=""}`}}, leaks: true},
		{name: "series of a selector", source: "resource_clients.ts querySeries", method: "POST", path: "/api/v1/series",
			params: url.Values{"limit": {limit}, "start": {s}, "end": {e}, "match[]": {`http_requests_total{code="500"}`}}, leaks: true},
		// SeriesApiClient.queryLabelValues (data sources without the labels match
		// API): the label's values from the series of a selector it builds.
		{name: "label values from series", source: "resource_clients.ts SeriesApiClient.queryLabelValues", method: "POST", path: "/api/v1/series",
			params: url.Values{"limit": {limit}, "start": {s}, "end": {e}, "match[]": {`{__name__="up",instance!=""}`}}, leaks: true},
		// Ad hoc filters: datasource.ts getTagValues → fetchSeriesValuesWithMatch.
		{name: "ad hoc filter values", source: "datasource.ts getTagValues", method: "GET", path: "/api/v1/label/job/values",
			params: url.Values{"start": {s}, "end": {e}, "match[]": {`{code="500"}`}}},
		// Hover help: language_provider.ts loadMetricsMetadata, GET, no parameters.
		{name: "metadata", source: "language_provider.ts loadMetricsMetadata", method: "GET", path: "/api/v1/metadata"},

		// Variable queries (metric_find_query.ts).
		{name: "label_values(namespace)", source: "metric_find_query.ts labelValuesQuery", method: "GET", path: "/api/v1/label/namespace/values",
			params: url.Values{"start": {s}, "end": {e}}, leaks: true},
		{name: "label_values(up, instance)", source: "metric_find_query.ts labelValuesQuery(metric)", method: "GET", path: "/api/v1/label/instance/values",
			params: url.Values{"match[]": {"up"}, "start": {s}, "end": {e}}, leaks: true},
		{name: "label_values(http_requests_total{code=\"500\"}, pod)", source: "metric_find_query.ts labelValuesQuery(metric)", method: "GET", path: "/api/v1/label/pod/values",
			params: url.Values{"match[]": {`http_requests_total{code="500"}`}, "start": {s}, "end": {e}}},
		{name: "label_names()", source: "metric_find_query.ts → getTagKeys → fetchLabels", method: "POST", path: "/api/v1/labels",
			params: url.Values{"start": {s}, "end": {e}}},
		{name: "metrics(http_.*)", source: "metric_find_query.ts metricNameQuery", method: "GET", path: "/api/v1/label/__name__/values",
			params: url.Values{"start": {s}, "end": {e}}},
		{name: "query_result(...)", source: "metric_find_query.ts queryResultQuery", method: "POST", path: "/api/v1/query",
			params: url.Values{"query": {`sort_desc(sum by (instance) (up))`}, "time": {e}}, leaks: true},
		{name: "series variable", source: "metric_find_query.ts metricNameAndLabelsQuery", method: "POST", path: "/api/v1/series",
			params: url.Values{"match[]": {`up{job="api"}`}, "start": {s}, "end": {e}}, leaks: true},
	}
}

// send sends a Grafana request to base, for tenant (none: the oracle or the
// unproxied Prometheus). asGET sends a POST request as GET, with its form in
// the URL, as Grafana does with httpMethod GET (middleware.ForceHttpGet) and
// when a POST is answered 400 or 405 (client.QueryResource).
func (g grafanaRequest) send(t *testing.T, base, tenant string, asGET bool) (int, envelope) {
	t.Helper()
	method, target, body := g.method, base+g.path, ""
	if method == "POST" && !asGET {
		body = g.params.Encode()
	} else {
		method = "GET"
		if len(g.params) > 0 {
			target += "?" + g.params.Encode()
		}
	}
	req := request(t, method, target, tenant, body) // sets Content-Type on a body
	for _, hs := range []map[string]string{grafanaHeaders, g.headers} {
		for k, v := range hs {
			req.Header.Set(k, v)
		}
	}
	status, env, _ := do(t, req)
	return status, env
}

// canonical renders an answer's data with the series of a query result and
// the elements of a list in sorted order, so that two Prometheus servers that
// store the same series in another order give the same text.
func canonical(t *testing.T, data json.RawMessage) string {
	t.Helper()
	var v any
	if err := json.Unmarshal(data, &v); err != nil {
		t.Fatalf("data is not JSON: %s", data)
	}
	sortJSON := func(xs []any) {
		slices.SortFunc(xs, func(a, b any) int {
			ja, _ := json.Marshal(a)
			jb, _ := json.Marshal(b)
			return strings.Compare(string(ja), string(jb))
		})
	}
	switch d := v.(type) {
	case []any:
		sortJSON(d)
	case map[string]any:
		if r, ok := d["result"].([]any); ok {
			sortJSON(r)
		}
	}
	out, _ := json.Marshal(v)
	return string(out)
}

// TestGrafanaDataSource replays the requests of Grafana's Prometheus data
// source through the proxy for each tenant: every one must succeed and answer
// exactly what the tenant's oracle answers, and none may name another tenant.
func TestGrafanaDataSource(t *testing.T) {
	p := startProxy(t, unionTenantsDir, "")
	reg := loadPolicies(t, unionTenantsDir)
	reqs := grafanaRequests(p.prom.Start, p.prom.End)
	for _, tenant := range []string{"team-a", "team-b", "team-c"} {
		t.Run(tenant, func(t *testing.T) {
			_, oracleURL := startOracle(t, p.prom, reg, tenant)
			var others []string
			for _, ns := range exampledata.Namespaces {
				if ns != tenant {
					others = append(others, ns)
				}
			}
			for _, g := range reqs {
				for _, asGET := range []bool{false, true} {
					if asGET && g.method != "POST" {
						continue
					}
					name := g.name
					if asGET {
						name += " (as GET)"
					}
					t.Run(name, func(t *testing.T) {
						wantStatus, want := g.send(t, oracleURL, "", asGET)
						if wantStatus != http.StatusOK || want.Status != "success" {
							t.Fatalf("oracle: %d %+v", wantStatus, want)
						}
						gotStatus, got := g.send(t, p.url, tenant, asGET)
						if gotStatus != http.StatusOK || got.Status != "success" {
							t.Fatalf("%s (%s) through the proxy: %d %s %q", g.name, g.source, gotStatus, got.ErrorType, got.Error)
						}
						gotData, wantData := canonical(t, got.Data), canonical(t, want.Data)
						if gotData != wantData {
							t.Errorf("%s (%s):\nproxy:  %s\noracle: %s", g.name, g.source, gotData, wantData)
						}
						for _, ns := range others {
							if strings.Contains(gotData, ns) {
								t.Errorf("%s: the answer names %s: %s", g.name, ns, gotData)
							}
						}
						if g.leaks {
							_, direct := g.send(t, p.prom.URL, "", asGET)
							if !slices.ContainsFunc(others, func(ns string) bool { return strings.Contains(string(direct.Data), ns) }) {
								t.Errorf("%s: the shared Prometheus's own answer names no other tenant, so the leak check proves nothing: %s", g.name, direct.Data)
							}
							if wantData == "[]" || strings.Contains(wantData, `"result":[]`) {
								t.Errorf("%s: the oracle's answer is empty, so the comparison proves nothing", g.name)
							}
						}
					})
				}
			}
		})
	}
}

// TestGrafanaRulesRefused: the data source asks for /api/v1/rules at start
// (datasource.ts loadRules) and ignores a failure. Rules hold other tenants'
// queries, so the proxy refuses them, in the envelope Grafana can show.
func TestGrafanaRulesRefused(t *testing.T) {
	p := startProxy(t, tenantsDir, "")
	g := grafanaRequest{name: "rules", method: "GET", path: "/api/v1/rules"}
	status, env := g.send(t, p.url, "team-a", false)
	if status != http.StatusNotFound || env.Status != "error" || env.ErrorType != "not_found" {
		t.Errorf("rules: %d %+v, want 404 not_found", status, env)
	}
}

// omSample is one sample line of an OpenMetrics exposition.
type omSample struct {
	name     string            // the series' metric name (with _total, _bucket, ...)
	labels   map[string]string // without __name__
	value    string
	exemplar string // the exemplar's label set, e.g. {trace_id="x"}, or ""
}

// omFamily is one metric family; its TYPE and HELP are what /api/v1/metadata reports.
type omFamily struct {
	name, typ, help string
	samples         []omSample
}

// omExposition renders the families as OpenMetrics, keeping only the samples
// whose series keep selects, and only families with a sample left: what a
// target exposing only those series would serve. Exemplars carry the fixed
// timestamp ts, so two Prometheus servers scraping at different moments
// store the same exemplars.
func omExposition(families []omFamily, ts time.Time, keep func(map[string]string) bool) string {
	var b strings.Builder
	for _, f := range families {
		var lines []string
		for _, s := range f.samples {
			series := map[string]string{"__name__": s.name}
			var pairs []string
			for _, k := range slices.Sorted(maps.Keys(s.labels)) {
				series[k] = s.labels[k]
				pairs = append(pairs, fmt.Sprintf("%s=%q", k, s.labels[k]))
			}
			if keep != nil && !keep(series) {
				continue
			}
			line := fmt.Sprintf("%s{%s} %s", s.name, strings.Join(pairs, ","), s.value)
			if s.exemplar != "" {
				line += fmt.Sprintf(" # %s 1 %d", s.exemplar, ts.Unix())
			}
			lines = append(lines, line)
		}
		if len(lines) > 0 {
			fmt.Fprintf(&b, "# TYPE %s %s\n# HELP %s %s\n%s\n", f.name, f.typ, f.name, f.help, strings.Join(lines, "\n"))
		}
	}
	b.WriteString("# EOF\n")
	return b.String()
}

// scrapedFamilies are series of two tenants with metadata and exemplars, as
// an instrumented application exposes them: an OpenMetrics counter (family
// http_requests, series http_requests_total), a histogram (family
// http_request_duration_seconds, series _bucket, _sum, _count) and gauges.
var scrapedFamilies = []omFamily{
	{name: "http_requests", typ: "counter", help: "Requests served.", samples: []omSample{
		{name: "http_requests_total", labels: map[string]string{"namespace": "team-a", "job": "api", "code": "200"}, value: "7", exemplar: `{trace_id="team-a-0001"}`},
		{name: "http_requests_total", labels: map[string]string{"namespace": "team-b", "job": "api", "code": "200"}, value: "3", exemplar: `{trace_id="team-b-0001"}`},
	}},
	{name: "http_request_duration_seconds", typ: "histogram", help: "Request latency.", samples: []omSample{
		{name: "http_request_duration_seconds_bucket", labels: map[string]string{"namespace": "team-a", "job": "api", "le": "0.1"}, value: "1", exemplar: `{trace_id="team-a-0002"}`},
		{name: "http_request_duration_seconds_bucket", labels: map[string]string{"namespace": "team-a", "job": "api", "le": "+Inf"}, value: "2"},
		{name: "http_request_duration_seconds_sum", labels: map[string]string{"namespace": "team-a", "job": "api"}, value: "0.3"},
		{name: "http_request_duration_seconds_count", labels: map[string]string{"namespace": "team-a", "job": "api"}, value: "2"},
		{name: "http_request_duration_seconds_bucket", labels: map[string]string{"namespace": "monitoring", "job": "api", "le": "0.1"}, value: "1", exemplar: `{trace_id="monitoring-0001"}`},
		{name: "http_request_duration_seconds_bucket", labels: map[string]string{"namespace": "monitoring", "job": "api", "le": "+Inf"}, value: "1"},
		{name: "http_request_duration_seconds_sum", labels: map[string]string{"namespace": "monitoring", "job": "api"}, value: "0.05"},
		{name: "http_request_duration_seconds_count", labels: map[string]string{"namespace": "monitoring", "job": "api"}, value: "1"},
	}},
	{name: "process_resident_memory_bytes", typ: "gauge", help: "Resident memory size in bytes.", samples: []omSample{
		{name: "process_resident_memory_bytes", labels: map[string]string{"namespace": "team-b", "job": "api"}, value: "1e6"},
	}},
	{name: "db_password_len", typ: "gauge", help: "A secret no tenant may see.", samples: []omSample{
		{name: "db_password_len", labels: map[string]string{"namespace": "team-b", "job": "db"}, value: "42"},
	}},
}

// TestGrafanaMetadataAndExemplars replays Grafana's hover-help and exemplar
// requests against Prometheus servers that scraped an application (metadata
// and exemplars exist only for scraped series): the shared one scrapes every
// series, each tenant's oracle only the tenant's allowed series, from the
// same target address (the instance label is part of an exemplar's series).
// The job is named as the series' own job label: with honor_labels, a
// series whose labels override the target's cannot be traced to its target,
// and the proxy gives its metadata to no one.
func TestGrafanaMetadataAndExemplars(t *testing.T) {
	t.Parallel() // see "Parallel tests" in main_test.go
	reg := loadPolicies(t, tenantsDir)
	ts := time.Now().Truncate(time.Second)
	exporter := startExemplarExporter(t, reg, ts)
	scraping := func(path string) *testenv.Prometheus {
		return testenv.StartPrometheusWith(t, testenv.PrometheusOptions{
			Args: []string{"--enable-feature=exemplar-storage"},
			Config: fmt.Sprintf(`global:
  scrape_interval: 1s
scrape_configs:
  - job_name: api
    honor_labels: true
    metrics_path: %s
    static_configs:
      - targets: [%q]
`, path, strings.TrimPrefix(exporter.URL, "http://"))})
	}
	shared := scraping("/all")
	p := startProxyTo(t, shared, tenantsDir, "")

	window := url.Values{"start": {fmt.Sprint(ts.Add(-5 * time.Minute).Unix())}, "end": {fmt.Sprint(ts.Add(5 * time.Minute).Unix())}}
	with := func(vs url.Values, k, v string) url.Values {
		out := maps.Clone(vs)
		out.Set(k, v)
		return out
	}
	reqs := []grafanaRequest{
		{name: "metadata", source: "language_provider.ts loadMetricsMetadata", method: "GET", path: "/api/v1/metadata"},
		{name: "exemplars of a counter", source: "pkg/promlib/client QueryExemplars", method: "POST", path: "/api/v1/query_exemplars",
			params: with(window, "query", `sum by (job) (rate(http_requests_total[1m0s]))`), headers: panelHeaders},
		{name: "exemplars of a histogram", source: "pkg/promlib/client QueryExemplars", method: "POST", path: "/api/v1/query_exemplars",
			params: with(window, "query", `histogram_quantile(0.99, sum by (le) (rate(http_request_duration_seconds_bucket[1m0s])))`), headers: panelHeaders},
		// For team-b, {namespace=~"team-.*"} overlaps both of its objects.
		{name: "exemplars of a union", source: "pkg/promlib/client QueryExemplars", method: "POST", path: "/api/v1/query_exemplars",
			params: with(window, "query", `sum(rate({namespace=~"team-.*"}[1m0s]))`), headers: panelHeaders},
	}
	// ready waits until a Prometheus has scraped: metadata and exemplars.
	ready := func(prom *testenv.Prometheus) {
		t.Helper()
		for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(200 * time.Millisecond) {
			_, md := reqs[0].send(t, prom.URL, "", false)
			_, ex := reqs[1].send(t, prom.URL, "", false)
			if len(md.Data) > 2 && strings.Contains(string(ex.Data), "trace_id") {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s has no metadata or exemplars after 20s: %s %s", prom.URL, md.Data, ex.Data)
			}
		}
	}
	ready(shared)
	for _, tenant := range []string{"team-a", "team-b"} {
		t.Run(tenant, func(t *testing.T) {
			oracle := scraping("/tenant/" + tenant)
			ready(oracle)
			checkRequestsSeeOracle(t, reqs, p.url, oracle.URL, tenant)
		})
	}
}

// startExemplarExporter serves scrapedFamilies with exemplars at ts in
// OpenMetrics: every series at /, and at /tenant/<namespace> only the series
// that tenant's policy allows (what its oracle Prometheus scrapes).
func startExemplarExporter(t *testing.T, reg *tenancy.Registry, ts time.Time) *httptest.Server {
	t.Helper()
	exporter := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var keep func(map[string]string) bool
		if tenant := strings.TrimPrefix(r.URL.Path, "/tenant/"); tenant != r.URL.Path {
			tn, ok := reg.Lookup(tenant)
			if !ok {
				http.NotFound(w, r)
				return
			}
			keep = func(s map[string]string) bool { return tn.Policy.Matches(labels.FromMap(s)) }
		}
		w.Header().Set("Content-Type", "application/openmetrics-text; version=1.0.0; charset=utf-8")
		_, _ = io.WriteString(w, omExposition(scrapedFamilies, ts, keep))
	}))
	t.Cleanup(exporter.Close)
	return exporter
}

// checkRequestsSeeOracle sends each of Grafana's requests as tenant through
// the proxy at proxyURL and to the tenant's oracle: the answers must be
// equal, and name no other tenant's namespace.
func checkRequestsSeeOracle(t *testing.T, reqs []grafanaRequest, proxyURL, oracleURL, tenant string) {
	t.Helper()
	for _, g := range reqs {
		t.Run(g.name, func(t *testing.T) {
			_, want := g.send(t, oracleURL, "", false)
			status, got := g.send(t, proxyURL, tenant, false)
			if status != http.StatusOK || got.Status != "success" {
				t.Fatalf("%s through the proxy: %d %s %q", g.name, status, got.ErrorType, got.Error)
			}
			gotData, wantData := canonical(t, got.Data), canonical(t, want.Data)
			if gotData != wantData {
				t.Errorf("%s (%s):\nproxy:  %s\noracle: %s", g.name, g.source, gotData, wantData)
			}
			for _, ns := range exampledata.Namespaces {
				if ns != tenant && strings.Contains(gotData, ns) {
					t.Errorf("%s: the answer names %s: %s", g.name, ns, gotData)
				}
			}
		})
	}
}
