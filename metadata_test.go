package promtenant

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"runtime"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"

	"github.com/prom-tenant/caddy-prom-tenant/internal/promapi"
)

// metadataTenants: team-a's policy is a union of two branches that cannot
// be merged, so the query of its series is one too.
const metadataTenants = `
apiVersion: observability.ethos.io/v1alpha1
kind: MetricAccess
metadata: {name: app, namespace: team-a}
spec:
  metricIsolation: true
  metrics: [http_requests_total, 'http_request_duration_seconds_.*', 'foo_.*']
---
apiVersion: observability.ethos.io/v1alpha1
kind: MetricAccess
metadata: {name: up, namespace: team-a}
spec:
  metricIsolation: true
  labelSelectors: {job: app}
  metrics: [up]
`

type fakeFamily struct{ name, typ, help string }

type fakeTarget struct {
	labels   map[string]string
	families []fakeFamily
}

// fakeMetadataUpstream is a Prometheus with scrape targets and series. It
// answers /api/v1/targets/metadata as Prometheus does, and evaluates the
// proxy's query of the tenant's series: the union of its selectors over
// series, grouped by its grouping labels (the proxy's name label standing
// for __name__). A selector that lacked the policy would select other
// tenants' series here too.
type fakeMetadataUpstream struct {
	t       *testing.T
	targets []fakeTarget
	series  []map[string]string
	asked   []string
}

func (f *fakeMetadataUpstream) ServeHTTP(w http.ResponseWriter, r *http.Request) error {
	body, _ := io.ReadAll(r.Body)
	f.asked = append(f.asked, r.Method+" "+r.URL.Path+"?"+r.URL.RawQuery+string(body))
	w.Header().Set("Content-Type", "application/json")
	var data any
	switch r.URL.Path {
	case "/api/v1/targets/metadata":
		metric := r.URL.Query().Get("metric")
		entries := []map[string]any{}
		for _, t := range f.targets {
			for _, fam := range t.families {
				e := map[string]any{"target": t.labels, "type": fam.typ, "help": fam.help, "unit": ""}
				switch metric {
				case "":
					e["metric"] = fam.name
				case fam.name:
				default:
					continue
				}
				entries = append(entries, e)
			}
		}
		data = entries
	case "/api/v1/query":
		form, err := url.ParseQuery(string(body))
		if r.Method != http.MethodPost || err != nil {
			f.t.Errorf("query sent as %s %q", r.Method, body)
		}
		data = map[string]any{"resultType": "vector", "result": f.eval(form.Get("query"))}
	default:
		w.WriteHeader(http.StatusNotFound)
		_, _ = io.WriteString(w, `{"status":"error","errorType":"not_found","error":"not found"}`)
		return nil
	}
	body, err := json.Marshal(map[string]any{"status": "success", "data": data})
	if err != nil {
		return err
	}
	// A newline after the JSON value, in a write of its own: the handler
	// must read the answer to its end (see abortingWrite).
	abortingWrite(w, body)
	abortingWrite(w, []byte("\n"))
	return nil
}

// abortingWrite writes as reverse_proxy copies an answer: a failed write
// mid-answer panics with http.ErrAbortHandler.
func abortingWrite(w io.Writer, b []byte) {
	if _, err := w.Write(b); err != nil {
		panic(http.ErrAbortHandler)
	}
}

func (f *fakeMetadataUpstream) eval(query string) []map[string]any {
	expr, err := parser.NewParser(parser.Options{}).ParseExpr(query)
	agg, ok := expr.(*parser.AggregateExpr)
	if err != nil || !ok || agg.Op != parser.GROUP {
		f.t.Fatalf("query %q: not a group by: %v", query, err)
	}
	var selectors [][]*labels.Matcher
	parser.Inspect(agg.Expr, func(n parser.Node, _ []parser.Node) error {
		if vs, ok := n.(*parser.VectorSelector); ok {
			selectors = append(selectors, vs.LabelMatchers)
		}
		return nil
	})
	seen := map[string]bool{}
	var out []map[string]any
	for _, s := range f.series {
		if !slices.ContainsFunc(selectors, func(ms []*labels.Matcher) bool {
			return !slices.ContainsFunc(ms, func(m *labels.Matcher) bool { return !m.Matches(s[m.Name]) })
		}) {
			continue
		}
		group := map[string]string{}
		for _, l := range agg.Grouping {
			v := s[l]
			if l == familyLabel {
				v = s[labels.MetricName]
			}
			if v != "" {
				group[l] = v
			}
		}
		if k := fmt.Sprint(group); !seen[k] {
			seen[k] = true
			out = append(out, map[string]any{"metric": group, "value": []any{1, "1"}})
		}
	}
	return out
}

// with returns the labels of a target plus more.
func with(target map[string]string, kv ...string) map[string]string {
	out := map[string]string{}
	for k, v := range target {
		out[k] = v
	}
	for i := 0; i < len(kv); i += 2 {
		out[kv[i]] = kv[i+1]
	}
	return out
}

var (
	targetA  = map[string]string{"instance": "a:80", "job": "app", "namespace": "team-a"}
	targetB  = map[string]string{"instance": "b:80", "job": "app", "namespace": "team-b"}
	targetA2 = map[string]string{"instance": "a:80", "job": "other", "namespace": "team-a"} // targetA's instance, another job
)

func metadataUpstream(t *testing.T) *fakeMetadataUpstream {
	return &fakeMetadataUpstream{t: t,
		targets: []fakeTarget{
			{labels: targetB, families: []fakeFamily{
				{"http_requests", "counter", "team-b internal: billing-api v7"},
				{"foo", "summary", "team-b's summary"},
				{"up", "gauge", "team-b's up"},
			}},
			{labels: targetA, families: []fakeFamily{
				{"http_requests", "counter", "Requests served."},
				{"http_request_duration_seconds", "histogram", "Latency."},
				{"foo_count", "gauge", "A gauge named like a summary's count."},
				{"db_password", "gauge", "No series of it is allowed."},
			}},
			// Same instance as targetA, but none of its series is team-a's.
			{labels: targetA2, families: []fakeFamily{{"http_requests", "counter", "Another job's requests."}}},
			// An entry with no target cannot be traced to one.
			{labels: map[string]string{}, families: []fakeFamily{{"http_requests", "counter", "Of no target."}}},
			{labels: with(targetA, "job", "api"), families: []fakeFamily{{"http_requests", "counter", "Requests served by the API."}}},
		},
		series: []map[string]string{
			with(targetB, "__name__", "http_requests_total", "code", "200"),
			with(targetB, "__name__", "foo_count"),
			with(targetB, "__name__", "foo_sum"),
			with(targetB, "__name__", "up"),
			with(targetA, "__name__", "http_requests_total", "code", "200"),
			with(targetA, "__name__", "http_requests_total", "code", "500"),
			with(targetA, "__name__", "http_request_duration_seconds_bucket", "le", "+Inf"),
			with(targetA, "__name__", "foo_count"),
			with(targetA, "__name__", "db_password"),
			with(targetA2, "__name__", "db_password"),
			with(targetA, "__name__", "http_requests_total", "job", "api"),
		},
	}
}

func TestMetadataOfTheTenantsTargets(t *testing.T) {
	h := newTestHandlerWith(t, metadataTenants)
	for _, tc := range []struct{ query, want string }{
		// Only targetA's entries, merged by family; the OpenMetrics counter
		// and the histogram through their series' suffixes; the gauge
		// foo_count without targetB's summary foo.
		{"", `{"foo_count":[{"type":"gauge","help":"A gauge named like a summary's count.","unit":""}],` +
			`"http_request_duration_seconds":[{"type":"histogram","help":"Latency.","unit":""}],` +
			`"http_requests":[{"type":"counter","help":"Requests served.","unit":""},{"type":"counter","help":"Requests served by the API.","unit":""}]}`},
		{"?metric=http_requests", `{"http_requests":[{"type":"counter","help":"Requests served.","unit":""},{"type":"counter","help":"Requests served by the API.","unit":""}]}`},
		{"?metric=foo", `{}`},
		{"?metric=up", `{}`},
		{"?metric=db_password", `{}`},
		// limit and limit_per_metric count what the tenant may see.
		{"?limit=1", `{"foo_count":[{"type":"gauge","help":"A gauge named like a summary's count.","unit":""}]}`},
		{"?limit=-1&metric=foo_count", `{"foo_count":[{"type":"gauge","help":"A gauge named like a summary's count.","unit":""}]}`},
		{"?limit_per_metric=1&metric=http_requests", `{"http_requests":[{"type":"counter","help":"Requests served.","unit":""}]}`},
		{"?limit_per_metric=0&metric=http_requests", `{"http_requests":[{"type":"counter","help":"Requests served.","unit":""},{"type":"counter","help":"Requests served by the API.","unit":""}]}`},
		{"?limit=0", `{}`},
	} {
		u := metadataUpstream(t)
		w := serve(t, h, u, get("/api/v1/metadata"+tc.query, "team-a"))
		if want := `{"status":"success","data":` + tc.want + `}`; w.Code != http.StatusOK || w.Body.String() != want {
			t.Errorf("metadata%s = %d %s\nwant %s", tc.query, w.Code, w.Body, want)
		}
		for _, a := range u.asked {
			if strings.Contains(a, "limit") {
				t.Errorf("metadata%s: limits are applied after the filter, not upstream: %s", tc.query, a)
			}
		}
	}
}

func TestMetadataSubrequests(t *testing.T) {
	h := newTestHandlerWith(t, metadataTenants)
	u := metadataUpstream(t)
	serve(t, h, u, get("/api/v1/metadata", "team-a"))
	want := []string{
		"GET /api/v1/targets/metadata?",
		// One query: the union of the policy's branches, each series named
		// in a label of its own, so that "or" keeps series of two names.
		"POST /api/v1/query?query=" + url.QueryEscape(`group by (instance, job, namespace, __prom_tenant_name__) (`+
			`label_replace({__name__="up",job="app",namespace="team-a"}, "__prom_tenant_name__", "$1", "__name__", "(.+)") or `+
			`label_replace({__name__=~"(?:(?s:foo_.*))|(?:(?s:http_request_duration_seconds_.*))|(?:http_requests_total)",__name__=~".+",namespace="team-a"}, "__prom_tenant_name__", "$1", "__name__", "(.+)"))`),
	}
	if !slices.Equal(u.asked, want) {
		t.Errorf("upstream requests:\n%s\nwant\n%s", strings.Join(u.asked, "\n"), strings.Join(want, "\n"))
	}
	// Nothing to ask when no target has metadata of the family.
	u = metadataUpstream(t)
	w := serve(t, h, u, get("/api/v1/metadata?metric=nothing", "team-a"))
	if len(u.asked) != 1 || w.Body.String() != `{"status":"success","data":{}}` {
		t.Errorf("metadata of no family: %s, asked %q", w.Body, u.asked)
	}
}

// TestMetadataUpstreamErrors: the sub-request's error answers reach the
// tenant as a forwarded request's do (readUpstreamError): the upstream's
// status and error type, its envelope's error whatever the Content-Type,
// or its text; a success that cannot be read is the proxy's 502.
func TestMetadataUpstreamErrors(t *testing.T) {
	h := newTestHandlerWith(t, metadataTenants)
	for _, tc := range []struct {
		name, answer string
		status       int
		want         string
		code         int
		errorType    string
	}{
		{"not an array", `{"status":"success","data":{"up":[17]}}`, http.StatusOK, `upstream /api/v1/targets/metadata answered 200 with no valid JSON: unexpected JSON token: {, want [`, 502, promapi.ErrorUnavailable},
		{"wrong entry", `{"status":"success","data":[{"target":"x"}]}`, http.StatusOK, `upstream /api/v1/targets/metadata: unexpected data: json: cannot unmarshal string into Go value of type map[string]string`, 502, promapi.ErrorUnavailable},
		{"not JSON", `<html>`, http.StatusOK, `upstream /api/v1/targets/metadata answered 200 with no valid JSON: invalid character '<' looking for beginning of value`, 502, promapi.ErrorUnavailable},
		{"not served (Thanos, VictoriaMetrics)", `{"status":"error","errorType":"not_found","error":"not found"}`, http.StatusNotFound, `upstream /api/v1/targets/metadata answered 404: not found`, 404, promapi.ErrorNotFound},
		{"envelope as text/plain (Thanos Query Frontend)", `text/plain: {"status":"error","errorType":"execution","error":"bad"}`, http.StatusUnprocessableEntity, `upstream /api/v1/targets/metadata answered 422: bad`, 422, promapi.ErrorExecution},
		{"Prometheus starting", "text/plain: Service Unavailable\n", http.StatusServiceUnavailable, `upstream /api/v1/targets/metadata answered 503: Service Unavailable`, 503, promapi.ErrorUnavailable},
		{"load balancer page", "text/html: <html><body><h1>502 Bad Gateway</h1></body></html>", http.StatusBadGateway, `upstream /api/v1/targets/metadata answered 502: 502 Bad Gateway`, 502, promapi.ErrorUnavailable},
		{"no Content-Type", "dial tcp 10.0.0.9:9090: connection refused", http.StatusInternalServerError, `upstream /api/v1/targets/metadata answered 500: dial tcp <address>: connection refused`, 500, promapi.ErrorInternal},
	} {
		next := caddyhttp.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) error {
			if ct, body, ok := strings.Cut(tc.answer, ": "); ok && strings.HasPrefix(ct, "text/") {
				w.Header().Set("Content-Type", ct)
				tc.answer = body
			}
			w.WriteHeader(tc.status)
			_, _ = io.WriteString(w, tc.answer)
			return nil
		})
		w := serve(t, h, next, get("/api/v1/metadata", "team-a"))
		var env struct{ ErrorType, Error string }
		_ = json.Unmarshal(w.Body.Bytes(), &env)
		if w.Code != tc.code || env.ErrorType != tc.errorType || env.Error != tc.want {
			t.Errorf("%s: %d %s\nwant %d %s %q", tc.name, w.Code, w.Body, tc.code, tc.errorType, tc.want)
		}
	}
}

// TestMetadataAnswerIsCapped: the upstream's answer is read as it streams,
// and no more than max_metadata_response of it: an endless answer is cut off
// there (the upstream's writes fail, and reverse_proxy's panic stays in the
// sub-request) with a refusal naming the option.
func TestMetadataAnswerIsCapped(t *testing.T) {
	h := newTestHandlerWith(t, metadataTenants)
	h.MaxMetadataResponse = 64 << 10
	entry := []byte(`{"target":{"instance":"a:80","job":"app","namespace":"team-a"},"metric":"m","type":"gauge","help":"` + strings.Repeat("x", 200) + `","unit":""},`)
	var written atomic.Int64
	var stopped atomic.Bool
	next := caddyhttp.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) error {
		_, _ = io.WriteString(w, `{"status":"success","data":[`)
		for written.Load() < 1<<30 {
			n, err := w.Write(entry)
			written.Add(int64(n))
			if err != nil {
				stopped.Store(true)
				panic(http.ErrAbortHandler) // as reverse_proxy does
			}
		}
		return nil
	})
	w := serve(t, h, next, get("/api/v1/metadata", "team-a"))
	want := `{"status":"error","errorType":"execution","error":"the upstream's answer to /api/v1/targets/metadata is larger than max_metadata_response (64 KiB): ask for one metric family with ?metric=\u003cname\u003e, or raise max_metadata_response in prom_tenant"}`
	if w.Code != http.StatusUnprocessableEntity || w.Body.String() != want {
		t.Errorf("endless answer: %d %s\nwant 422 %s", w.Code, w.Body, want)
	}
	if !stopped.Load() || written.Load() > 2*h.MaxMetadataResponse {
		t.Errorf("the upstream wrote %d bytes (stopped: %v); the cap is %d", written.Load(), stopped.Load(), h.MaxMetadataResponse)
	}
}

func TestMetadataParameters(t *testing.T) {
	h := newTestHandlerWith(t, metadataTenants)
	for _, q := range []string{"limit=ten", "limit_per_metric=1.5"} {
		w := serve(t, h, metadataUpstream(t), get("/api/v1/metadata?"+q, "team-a"))
		name, value, _ := strings.Cut(q, "=")
		if want := fmt.Sprintf(`invalid %s %q`, name, value); w.Code != http.StatusBadRequest || !strings.Contains(w.Body.String(), strings.ReplaceAll(want, `"`, `\"`)) {
			t.Errorf("%s: %d %s, want 400 %s", q, w.Code, w.Body, want)
		}
	}
}

// BenchmarkMetadata measures /api/v1/metadata against an upstream with many
// targets (100 families each, as a node exporter has about 300), of which
// team-a has series of 10. live-B is the heap in use while the handler holds
// what it read of the metadata by target (measured once, after a GC), next
// to answer-B, the size of that answer: the handler keeps each target,
// family and metadata once, and 12 bytes per entry.
func BenchmarkMetadata(b *testing.B) {
	for _, targets := range []int{100, 1000} {
		b.Run(fmt.Sprintf("targets=%d", targets), func(b *testing.B) {
			h := newTestHandlerWith(b, metadataTenants)
			var entries, groups strings.Builder
			entries.WriteString(`{"status":"success","data":[`)
			groups.WriteString(`{"status":"success","data":{"resultType":"vector","result":[`)
			for i := range targets {
				ns := "team-b"
				if i%(targets/10) == 0 {
					ns = "team-a"
				}
				target := fmt.Sprintf(`{"instance":"10.0.%d.%d:9100","job":"node","namespace":%q,"pod":"node-exporter-%d"}`, i/256, i%256, ns, i)
				for f := range 100 {
					if i+f > 0 {
						entries.WriteByte(',')
					}
					fmt.Fprintf(&entries, `{"target":%s,"metric":"node_family_%d","type":"gauge","help":"Help text of family %d, as long as a real one usually is.","unit":""}`, target, f, f)
					if ns == "team-a" {
						if groups.Len() > 60 {
							groups.WriteByte(',')
						}
						fmt.Fprintf(&groups, `{"metric":{"__prom_tenant_name__":"node_family_%d",%s},"value":[1,"1"]}`, f, target[1:len(target)-1])
					}
				}
			}
			entries.WriteString(`]}`)
			groups.WriteString(`]}}`)
			var ms runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&ms)
			baseline := ms.HeapAlloc
			measured, live := false, 0.0
			next := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
				body := entries.String()
				if r.URL.Path == "/api/v1/query" {
					body = groups.String()
					if !measured {
						measured = true
						runtime.GC()
						runtime.ReadMemStats(&ms)
						live = float64(ms.HeapAlloc) - float64(baseline)
					}
				}
				for len(body) > 0 { // in 32 KiB writes, as reverse_proxy copies
					n := min(len(body), 32<<10)
					if _, err := io.WriteString(w, body[:n]); err != nil {
						return err
					}
					body = body[n:]
				}
				return nil
			})
			b.ReportAllocs()
			for b.Loop() {
				w := serve(b, h, next, get("/api/v1/metadata", "team-a"))
				if w.Code != http.StatusOK || !strings.Contains(w.Body.String(), "node_family_99") {
					b.Fatalf("%d %.200s", w.Code, w.Body)
				}
			}
			b.ReportMetric(float64(entries.Len()), "answer-B")
			b.ReportMetric(live, "live-B")
		})
	}
}
