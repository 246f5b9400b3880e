package promtenant

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// newVMHandler is newTestHandler with `backend victoriametrics`.
func newVMHandler(t *testing.T) *Handler {
	t.Helper()
	h := newTestHandler(t)
	h.Backend = "victoriametrics"
	h.backend = backendVictoriaMetrics
	return h
}

// vmQueryError answers as VictoriaMetrics 1.79 answers a query that fails:
// 422, its envelope, the query it ran quoted in the text (a JSON error
// type of "422", as it sends).
func vmQueryError(encoding string) *upstream {
	u := &upstream{}
	u.respond = func(w http.ResponseWriter, r *http.Request) error {
		form, _ := url.ParseQuery(r.URL.RawQuery)
		if r.Method == http.MethodPost {
			form, _ = url.ParseQuery(u.body) // upstream read the body
		}
		text := fmt.Sprintf("error when executing query=%q for (time=1796430660000, step=300000): duplicate output timeseries: {job=\"api\"}", form.Get("query"))
		body, _ := json.Marshal(map[string]string{"status": "error", "errorType": "422", "error": text})
		w.Header().Set("Content-Type", "application/json")
		if encoding == "gzip" {
			w.Header().Set("Content-Encoding", "gzip")
			body = gzipped(string(body))
		}
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		w.WriteHeader(http.StatusUnprocessableEntity)
		_, err := w.Write(body)
		return err
	}
	return u
}

// TestVictoriaMetricsErrorsQuoteTheTenantsQuery: VictoriaMetrics quotes
// the query it ran in its errors; through the proxy the tenant reads its
// own query there, as a tenant-only VictoriaMetrics would answer, never
// the rewritten one (the policy, a union's part marks).
func TestVictoriaMetricsErrorsQuoteTheTenantsQuery(t *testing.T) {
	const q = `timestamp({namespace="team-b"})` // a union of team-b's two branches
	for _, tc := range []struct{ name, encoding string }{{"plain", ""}, {"gzip", "gzip"}} {
		for _, req := range []*http.Request{
			get("/api/v1/query?query="+url.QueryEscape(q), "team-b"),
			post("/api/v1/query_range", "team-b", url.Values{"query": {q}, "start": {"0"}, "end": {"60"}, "step": {"15"}}.Encode()),
		} {
			t.Run(tc.name+" "+req.Method, func(t *testing.T) {
				next := vmQueryError(tc.encoding)
				w := serve(t, newVMHandler(t), next, req)
				rewritten := next.form(t).Get("query")
				if !strings.Contains(rewritten, "__prom_tenant_part__") {
					t.Fatalf("the test needs a union: %s", rewritten)
				}
				var env struct{ Status, ErrorType, Error string }
				if err := json.Unmarshal(w.Body.Bytes(), &env); err != nil {
					t.Fatalf("%d %q: %v", w.Code, w.Body, err)
				}
				want := fmt.Sprintf("error when executing query=%q for (time=1796430660000, step=300000): duplicate output timeseries: {job=\"api\"}", q)
				if w.Code != http.StatusUnprocessableEntity || env.Status != "error" || env.ErrorType != "422" || env.Error != want {
					t.Errorf("got %d %+v\nwant error %s", w.Code, env, want)
				}
				if h := w.Header(); h.Get("Content-Encoding") != "" || h.Get("Content-Length") != "" || h.Get("Content-Type") != "application/json" {
					t.Errorf("headers %v", h)
				}
			})
		}
	}
}

// TestVictoriaMetricsPlainErrorsQuoteTheTenantsQuery: VictoriaMetrics'
// plain-text errors name the request URI, with the rewritten query
// URL-encoded: it is taken out, the reason kept.
func TestVictoriaMetricsPlainErrorsQuoteTheTenantsQuery(t *testing.T) {
	const q = `up`
	next := &upstream{respond: func(w http.ResponseWriter, r *http.Request) error {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(http.StatusBadRequest)
		_, err := fmt.Fprintf(w, "requestURI: %s; cannot parse", r.URL.RequestURI())
		return err
	}}
	w := serve(t, newVMHandler(t), next, get("/api/v1/query?query="+q, "team-a"))
	var env struct{ Error string }
	_ = json.Unmarshal(w.Body.Bytes(), &env)
	if want := "upstream answered 400 Bad Request: cannot parse"; env.Error != want {
		t.Errorf("got %d %q\nwant %q", w.Code, env.Error, want)
	}
}

// TestVictoriaMetricsLongErrorsAreNotQuoted: an error too long to hold
// whole may have the rewritten query cut anywhere: it is not shown.
func TestVictoriaMetricsLongErrorsAreNotQuoted(t *testing.T) {
	next := &upstream{respond: func(w http.ResponseWriter, r *http.Request) error {
		_ = r.ParseForm()
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnprocessableEntity)
		_, err := fmt.Fprintf(w, `{"status":"error","errorType":"422","error":%q}`, strings.Repeat("x", 1<<20)+r.Form.Get("query"))
		return err
	}}
	w := serve(t, newVMHandler(t), next, get("/api/v1/query?query=up", "team-a"))
	var env struct{ Status, ErrorType, Error string }
	_ = json.Unmarshal(w.Body.Bytes(), &env)
	if want := "upstream answered 422 Unprocessable Entity: (VictoriaMetrics' error text was too long to show)"; w.Code != http.StatusUnprocessableEntity || env.ErrorType != "execution" || env.Error != want {
		t.Errorf("got %d %.200s…", w.Code, w.Body)
	}
}

// TestVictoriaMetricsUnreadableErrors: an error body in an encoding the
// proxy does not decode is not passed on as JSON.
func TestVictoriaMetricsUnreadableErrors(t *testing.T) {
	w := serve(t, newVMHandler(t), answering(422, "application/json", "br", []byte{1, 2, 3}), get("/api/v1/query?query=up", "team-a"))
	var env struct{ Status, ErrorType, Error string }
	if err := json.Unmarshal(w.Body.Bytes(), &env); err != nil || env.Error != "upstream answered 422 Unprocessable Entity: (body in br encoding)" {
		t.Errorf("got %d %q", w.Code, w.Body)
	}
}

// TestVictoriaMetricsSuccessPassesUntouched: answers that succeed stream
// as they are, with their headers.
func TestVictoriaMetricsSuccessPassesUntouched(t *testing.T) {
	body := gzipped(`{"status":"success","data":{"resultType":"vector","result":[]}}`)
	w := serve(t, newVMHandler(t), answering(200, "application/json", "gzip", body), get("/api/v1/query?query=up", "team-a"))
	if w.Code != 200 || w.Body.String() != string(body) || w.Header().Get("Content-Encoding") != "gzip" {
		t.Errorf("got %d %v %q", w.Code, w.Header(), w.Body)
	}
}

// TestPrometheusErrorsPassUntouched: the replacement is VictoriaMetrics'
// only; a Prometheus upstream's JSON error passes as its bytes.
func TestPrometheusErrorsPassUntouched(t *testing.T) {
	next := vmQueryError("")
	w := serve(t, newTestHandler(t), next, get("/api/v1/query?query=up", "team-a"))
	if !strings.Contains(w.Body.String(), `namespace=\\\"team-a\\\"`) {
		t.Errorf("got %s", w.Body)
	}
}

// TestVictoriaMetricsMetadataIsEmpty: VictoriaMetrics keeps no metadata,
// so /api/v1/metadata answers as it does, without asking the upstream
// (whose /api/v1/metadata the proxy could not filter).
func TestVictoriaMetricsMetadataIsEmpty(t *testing.T) {
	for _, path := range []string{"/api/v1/metadata", "/api/v1/metadata?metric=up&limit=1"} {
		next := &upstream{}
		w := serve(t, newVMHandler(t), next, get(path, "team-a"))
		if w.Code != 200 || w.Body.String() != `{"status":"success","data":{}}` || w.Header().Get("Content-Type") != "application/json" {
			t.Errorf("%s: got %d %v %q", path, w.Code, w.Header(), w.Body)
		}
		if next.got != nil {
			t.Errorf("%s: the upstream was asked %s", path, next.got.URL)
		}
	}
}

// BenchmarkVictoriaMetricsQuery is what backend victoriametrics adds to a
// rewritten query that succeeds (the writer that would hold an error): the
// same request and answer with backend prometheus and victoriametrics.
func BenchmarkVictoriaMetricsQuery(b *testing.B) {
	body := []byte(`{"status":"success","data":{"resultType":"vector","result":[]}}`)
	next := caddyhttp.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) error {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		_, err := w.Write(body)
		return err
	})
	for _, backend := range []backendKind{backendPrometheus, backendVictoriaMetrics} {
		h := newTestHandler(b)
		h.backend = backend
		b.Run(backend.String(), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				r := httptest.NewRequest(http.MethodGet, "/api/v1/query?query=up&time=1700000000", nil)
				r.Header.Set("X-Tenant-Namespace", "team-a")
				w := httptest.NewRecorder()
				r = caddyhttp.PrepareRequest(r, caddy.NewReplacer(), w, nil)
				if err := h.ServeHTTP(w, r, next); err != nil || w.Code != http.StatusOK {
					b.Fatalf("ServeHTTP: %v, status %d", err, w.Code)
				}
			}
		})
	}
}

// TestVictoriaMetricsLongGzipError is review 16a's repro: a gzip error
// envelope whose decoded text is over maxUpstreamErrorBody (a long query
// is all a tenant needs) must never reach the tenant cut, as broken JSON
// with the rewritten query (the policy, part marks) in it.
func TestVictoriaMetricsLongGzipError(t *testing.T) {
	q := `sum({namespace="team-b"}) or label_replace(vector(1),"x","` + strings.Repeat("a", 20000) + `","","")`
	next := vmQueryError("gzip")
	w := serve(t, newVMHandler(t), next, get("/api/v1/query?query="+url.QueryEscape(q), "team-b"))
	var env struct{ Status, ErrorType, Error string }
	if err := json.Unmarshal(w.Body.Bytes(), &env); err != nil || env.Status != "error" {
		t.Fatalf("%d %s: not an error envelope (%v)", w.Code, truncate(w.Body.String(), 300), err)
	}
	if rewritten := next.form(t).Get("query"); !strings.Contains(rewritten, "__prom_tenant_part__") {
		t.Fatalf("the test needs a union: %s", truncate(rewritten, 300))
	}
	for _, leak := range []string{"__prom_tenant_part__", `up{job="api",namespace="team-b"}`, `namespace=\"team-b\",`} {
		if strings.Contains(w.Body.String(), leak) {
			t.Errorf("answer holds %s: %s", leak, truncate(w.Body.String(), 300))
		}
	}
	if w.Code != http.StatusUnprocessableEntity || w.Header().Get("Content-Type") != "application/json" || w.Header().Get("Content-Encoding") != "" {
		t.Errorf("%d %v", w.Code, w.Header())
	}

	// Over the bound when decoded (a long text after the query): cut, so
	// not shown, and in an envelope.
	next = &upstream{respond: func(w http.ResponseWriter, r *http.Request) error {
		form, _ := url.ParseQuery(r.URL.RawQuery)
		text := fmt.Sprintf("error when executing query=%q: %s", form.Get("query"), strings.Repeat("duplicate output timeseries; ", 20000))
		body, _ := json.Marshal(map[string]string{"status": "error", "errorType": "422", "error": text})
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Content-Encoding", "gzip")
		w.WriteHeader(http.StatusUnprocessableEntity)
		_, err := w.Write(gzipped(string(body)))
		return err
	}}
	w = serve(t, newVMHandler(t), next, get("/api/v1/query?query="+url.QueryEscape(`timestamp({namespace="team-b"})`), "team-b"))
	if err := json.Unmarshal(w.Body.Bytes(), &env); err != nil || env.Status != "error" {
		t.Fatalf("%d %s: not an error envelope (%v)", w.Code, truncate(w.Body.String(), 300), err)
	}
	if want := "upstream answered 422 Unprocessable Entity: (VictoriaMetrics' error text was too long to show)"; env.Error != want {
		t.Errorf("got %s\nwant %s", truncate(env.Error, 300), want)
	}
}

// vmMatchError answers as VictoriaMetrics 1.79 answers a selection over
// -search.maxSeries (texts as it sends them, with the filters it ran: the
// rewritten match[]).
func vmMatchError(t *testing.T) *upstream {
	t.Helper()
	const reason = "the number of matching timeseries exceeds 1; either narrow down the search or increase -search.max* command-line flag values at vmselect; see https://docs.victoriametrics.com/#resource-usage-limits"
	return &upstream{respond: func(w http.ResponseWriter, r *http.Request) error {
		form, _ := url.ParseQuery(r.URL.RawQuery)
		filters := form["match[]"][0] // {__name__="up",namespace="team-a"}: VictoriaMetrics prints its own form, alike
		timeRange := "2026-12-05T01:08:36Z..2026-12-05T01:13:36Z"
		if r.URL.Path == "/federate" {
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			w.WriteHeader(http.StatusBadRequest)
			// Behind a proxy it names the proxy's address and the client's.
			_, err := fmt.Fprintf(w, "remoteAddr: %q, X-Forwarded-For: %q; requestURI: %s; cannot fetch data for %q: search error after reading 0 data blocks: error when searching for tagFilters=[%s] on the time range [%s]: error when searching tsids: %s\n",
				"127.0.0.1:55958", "192.0.2.7", r.URL.RequestURI(), "filters=["+filters+"], timeRange=["+timeRange+"]", filters, timeRange, reason)
			return err
		}
		text := fmt.Sprintf("cannot fetch time series for %q: cannot find metric names: error when searching tsids: %s", "filters=["+filters+"], timeRange=["+timeRange+"]", reason)
		body, _ := json.Marshal(map[string]string{"status": "error", "errorType": "422", "error": text})
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnprocessableEntity)
		_, err := w.Write(body)
		return err
	}}
}

// TestVictoriaMetricsMatchErrorsWithoutThePolicy: errors of series and
// /federate quote the filters VictoriaMetrics ran and the request URI,
// which hold the policy: the tenant gets the reason without them.
func TestVictoriaMetricsMatchErrorsWithoutThePolicy(t *testing.T) {
	for _, path := range []string{"/api/v1/series?match[]=up", "/federate?match[]=up"} {
		w := serve(t, newVMHandler(t), vmMatchError(t), get(path, "team-a"))
		var env struct{ Status, Error string }
		if err := json.Unmarshal(w.Body.Bytes(), &env); err != nil || env.Status != "error" {
			t.Fatalf("%s: %d %s (%v)", path, w.Code, w.Body, err)
		}
		if strings.Contains(env.Error, "namespace") || strings.Contains(env.Error, "requestURI") || strings.Contains(env.Error, "remoteAddr") || strings.Contains(env.Error, "X-Forwarded-For") {
			t.Errorf("%s: %s", path, env.Error)
		}
		if !strings.Contains(env.Error, "the number of matching timeseries exceeds 1") {
			t.Errorf("%s: the reason is lost: %s", path, env.Error)
		}
		t.Logf("%s: %d %s", path, w.Code, env.Error)
	}
}

// TestVictoriaMetricsQueryTagFilters: a query's search errors print the
// filters of the rewritten selector too, and the subexpression evaluated.
func TestVictoriaMetricsQueryTagFilters(t *testing.T) {
	next := &upstream{respond: func(w http.ResponseWriter, r *http.Request) error {
		form, _ := url.ParseQuery(r.URL.RawQuery)
		q := form.Get("query")
		text := fmt.Sprintf(`error when executing query=%q for (time=1796433186567, step=300000): cannot evaluate %q: search error after reading 0 data blocks: error when searching for tagFilters=[{__name__="up",namespace="team-a"}] on the time range [2026-12-05T01:03:06.567Z..2026-12-05T01:13:06.567Z]: error when searching tsids: the number of matching timeseries exceeds 1`, q, q)
		body, _ := json.Marshal(map[string]string{"status": "error", "errorType": "422", "error": text})
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnprocessableEntity)
		_, err := w.Write(body)
		return err
	}}
	w := serve(t, newVMHandler(t), next, get("/api/v1/query?query=up", "team-a"))
	var env struct{ Error string }
	_ = json.Unmarshal(w.Body.Bytes(), &env)
	want := `error when executing query="up" for (time=1796433186567, step=300000): cannot evaluate "up": search error after reading 0 data blocks: error when searching for the selectors on the time range [2026-12-05T01:03:06.567Z..2026-12-05T01:13:06.567Z]: error when searching tsids: the number of matching timeseries exceeds 1`
	if env.Error != want {
		t.Errorf("got  %s\nwant %s", env.Error, want)
	}
}
