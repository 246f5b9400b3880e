package promtenant

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/prom-tenant/caddy-prom-tenant/tenancy"
)

const testTenants = `
apiVersion: observability.ethos.io/v1alpha1
kind: MetricAccess
metadata: {name: app, namespace: team-a}
spec:
  metricIsolation: true
  metrics: [http_requests_total, up]
---
apiVersion: observability.ethos.io/v1alpha1
kind: MetricAccess
metadata: {name: http, namespace: team-b}
spec:
  metricIsolation: true
  metrics: [http_requests_total]
---
apiVersion: observability.ethos.io/v1alpha1
kind: MetricAccess
metadata: {name: api, namespace: team-b}
spec:
  metricIsolation: true
  labelSelectors: {job: api}
  metrics: [up]
`

// newTestHandler provisions a handler with tenants read by the real
// directory source from a temporary directory.
func newTestHandler(t testing.TB) *Handler {
	t.Helper()
	return newTestHandlerWith(t, testTenants)
}

// newTestHandlerWith is newTestHandler with other MetricAccess manifests.
func newTestHandlerWith(t testing.TB, tenants string) *Handler {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "tenants.yaml"), []byte(tenants), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	t.Cleanup(cancel)
	app := &tenancy.App{Directory: &tenancy.DirectorySource{Path: dir}}
	if err := app.Provision(ctx); err != nil {
		t.Fatalf("provisioning tenancy: %v", err)
	}
	h := &Handler{registry: app.Registry()}
	h.provisionDefaults(ctx)
	h.logger = zap.NewNop() // as at Caddy's default level, where debug lines cost nothing
	return h
}

// upstream is a next handler that records the request it was handed.
type upstream struct {
	got     *http.Request
	body    string
	respond func(w http.ResponseWriter, r *http.Request) error
}

func (u *upstream) ServeHTTP(w http.ResponseWriter, r *http.Request) error {
	u.got = r
	b, _ := io.ReadAll(r.Body)
	u.body = string(b)
	if u.respond != nil {
		return u.respond(w, r)
	}
	w.WriteHeader(http.StatusOK)
	return nil
}

// form is what the upstream would parse: URL query for GET, body for POST.
func (u *upstream) form(t *testing.T) url.Values {
	t.Helper()
	raw := u.got.URL.RawQuery
	if u.got.Method == http.MethodPost {
		raw = u.body
	}
	f, err := url.ParseQuery(raw)
	if err != nil {
		t.Fatalf("upstream request form %q: %v", raw, err)
	}
	return f
}

func serve(t testing.TB, h *Handler, next caddyhttp.Handler, r *http.Request) *httptest.ResponseRecorder {
	t.Helper()
	w := httptest.NewRecorder()
	r = caddyhttp.PrepareRequest(r, caddy.NewReplacer(), w, nil)
	if err := h.ServeHTTP(w, r, next); err != nil {
		t.Fatalf("ServeHTTP returned %v", err)
	}
	return w
}

func get(target, tenant string) *http.Request {
	r := httptest.NewRequest(http.MethodGet, target, nil)
	if tenant != "" {
		r.Header.Set("X-Tenant-Namespace", tenant)
	}
	return r
}

func post(target, tenant, body string) *http.Request {
	r := httptest.NewRequest(http.MethodPost, target, strings.NewReader(body))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if tenant != "" {
		r.Header.Set("X-Tenant-Namespace", tenant)
	}
	return r
}

func TestQueryIsRewrittenAndRebuilt(t *testing.T) {
	h := newTestHandler(t)
	r := get("/api/v1/query?query="+url.QueryEscape(`sum(up)`)+"&time=100", "team-a")
	r.Header.Set("Authorization", "Bearer secret")
	r.Header.Set("X-Scope-OrgID", "team-b")
	r.Header.Set("Cookie", "a=b")
	r.Header.Set("Accept-Encoding", "gzip")
	u := &upstream{}
	w := serve(t, h, u, r)
	if w.Code != http.StatusOK || u.got == nil {
		t.Fatalf("status %d, body %s; upstream called: %v", w.Code, w.Body, u.got != nil)
	}
	f := u.form(t)
	if got, want := f.Get("query"), `sum(up{namespace="team-a"})`; got != want {
		t.Errorf("upstream query = %s, want %s", got, want)
	}
	if f.Get("time") != "100" {
		t.Errorf("time lost: %v", f)
	}
	for _, hdr := range []string{"Authorization", "X-Scope-Orgid", "Cookie", "X-Tenant-Namespace"} {
		if v := u.got.Header.Get(hdr); v != "" {
			t.Errorf("header %s forwarded upstream: %q", hdr, v)
		}
	}
	if u.got.Header.Get("Accept-Encoding") != "gzip" {
		t.Errorf("Accept-Encoding dropped; the upstream's gzip must stream through")
	}
}

func TestPostIsRebuiltAsBody(t *testing.T) {
	h := newTestHandler(t)
	u := &upstream{}
	body := url.Values{"query": {`rate(http_requests_total[5m])`}, "start": {"1"}, "end": {"2"}, "step": {"1"}}.Encode()
	w := serve(t, h, u, post("/api/v1/query_range?start=1", "team-b", body))
	if w.Code != http.StatusOK {
		t.Fatalf("status %d: %s", w.Code, w.Body)
	}
	if u.got.URL.RawQuery != "" {
		t.Errorf("POST forwarded with URL query %q; the body is the one canonical place", u.got.URL.RawQuery)
	}
	if got, want := u.form(t).Get("query"), `rate(http_requests_total{namespace="team-b"}[5m])`; got != want {
		t.Errorf("query = %s, want %s", got, want)
	}
	if u.got.ContentLength != int64(len(u.body)) {
		t.Errorf("Content-Length %d for a body of %d bytes", u.got.ContentLength, len(u.body))
	}
}

func TestMatchersAreEnforced(t *testing.T) {
	h := newTestHandler(t)
	for _, tc := range []struct {
		target string
		want   []string
	}{
		{"/api/v1/series?match[]=up", []string{`{__name__="up",job="api",namespace="team-b"}`}},
		{"/api/v1/labels", []string{`{__name__="http_requests_total",namespace="team-b"}`, `{__name__="up",job="api",namespace="team-b"}`}},
		{"/api/v1/label/job/values?match[]=" + url.QueryEscape(`{namespace="team-b"}`), []string{`{__name__="http_requests_total",namespace="team-b"}`, `{__name__="up",job="api",namespace="team-b"}`}},
		{"/federate?match[]=" + url.QueryEscape(`{namespace="team-a"}`), []string{`{__name__!~"(?s:.*)"}`}},
	} {
		u := &upstream{}
		w := serve(t, h, u, get(tc.target, "team-b"))
		if w.Code != http.StatusOK {
			t.Fatalf("%s: status %d: %s", tc.target, w.Code, w.Body)
		}
		if got := u.form(t)["match[]"]; strings.Join(got, " ") != strings.Join(tc.want, " ") {
			t.Errorf("%s: upstream match[] = %q, want %q", tc.target, got, tc.want)
		}
	}
}

func TestRefusals(t *testing.T) {
	h := newTestHandler(t)
	repeated := get("/api/v1/query?query=up", "team-a")
	repeated.Header.Add("X-Tenant-Namespace", "team-b")
	bigBody := post("/api/v1/query", "team-a", "query="+strings.Repeat("a", 2<<20))
	jsonBody := post("/api/v1/query", "team-a", `{"query":"up"}`)
	jsonBody.Header.Set("Content-Type", "application/json")
	for _, tc := range []struct {
		name      string
		req       *http.Request
		status    int
		errorType string
		contains  string
	}{
		{"no tenant", get("/api/v1/query?query=up", ""), 401, "unauthorized", "no tenant"},
		{"unknown tenant", get("/api/v1/query?query=up", "team-c"), 403, "forbidden", `unknown tenant "team-c"`},
		{"comma tenant", get("/api/v1/query?query=up", "team-a,team-b"), 400, "bad_data", "more than one tenant"},
		{"repeated tenant header", repeated, 400, "bad_data", "more than one tenant"},
		{"tenant not a namespace", get("/api/v1/query?query=up", "Team_A"), 400, "bad_data", "not a namespace name"},
		{"health path", get("/-/healthy", "team-a"), 404, "not_found", `"/-/healthy" is not served`},
		{"metrics path", get("/metrics", "team-a"), 404, "not_found", "not served"},
		{"root path", get("/", "team-a"), 404, "not_found", "not served"},
		{"admin API", post("/api/v1/admin/tsdb/delete_series?match[]=up", "team-a", ""), 404, "not_found", "not served"},
		{"rules", get("/api/v1/rules", "team-a"), 404, "not_found", "not served"},
		{"trailing slash", get("/api/v1/query/?query=up", "team-a"), 404, "not_found", "not served"},
		{"bad label name in path", get("/api/v1/label/a-b/values", "team-a"), 404, "not_found", "not served"},
		{"POST federate", post("/federate", "team-a", "match[]=up"), 405, "bad_data", "method POST"},
		{"missing query", get("/api/v1/query", "team-a"), 400, "bad_data", `"query" is missing`},
		{"bad PromQL", get("/api/v1/query?query=sum(", "team-a"), 400, "bad_data", "cannot parse"},
		{"duplicate query", get("/api/v1/query?query=up&query=db_password_len", "team-a"), 400, "bad_data", `"query" is given 2 times`},
		{"bad escape", get("/api/v1/query?query=%zz", "team-a"), 400, "bad_data", "cannot parse the URL query"},
		{"semicolon", get("/api/v1/query?query=up;query=x", "team-a"), 400, "bad_data", "cannot parse the URL query"},
		{"URL and body differ", post("/api/v1/query?query=up", "team-a", "query=db_password_len"), 400, "bad_data", "both the URL and the body"},
		{"unknown parameter", get("/api/v1/query?query=up&extra_filters[]=x", "team-a"), 400, "bad_data", `parameter "extra_filters[]" is VictoriaMetrics's own tenancy enforcement`},
		{"series without match[]", get("/api/v1/series", "team-a"), 400, "bad_data", "no match[]"},
		{"federate without match[]", get("/federate", "team-a"), 400, "bad_data", "no match[]"},
		{"body too large", bigBody, 413, "bad_data", "larger than"},
		{"JSON body", jsonBody, 415, "bad_data", "Content-Type"},
		{"range selector over a union", get("/api/v1/query?query="+url.QueryEscape(`{namespace="team-b"}[5m]`), "team-b"), 400, "bad_data", "PromQL has no union of range vectors"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u := &upstream{}
			w := serve(t, h, u, tc.req)
			if u.got != nil {
				t.Errorf("refused request reached the upstream: %s", u.got.URL)
			}
			if w.Code != tc.status {
				t.Errorf("status = %d, want %d (%s)", w.Code, tc.status, w.Body)
			}
			var env struct{ Status, ErrorType, Error string }
			if err := json.Unmarshal(w.Body.Bytes(), &env); err != nil {
				t.Fatalf("body is not the JSON envelope: %q", w.Body)
			}
			if env.Status != "error" || env.ErrorType != tc.errorType || !strings.Contains(env.Error, tc.contains) {
				t.Errorf("envelope = %+v, want errorType %q and an error containing %q", env, tc.errorType, tc.contains)
			}
		})
	}
}

func TestURLAndBodyMayAgree(t *testing.T) {
	h := newTestHandler(t)
	u := &upstream{}
	w := serve(t, h, u, post("/api/v1/query?query=up", "team-a", "query=up&time=5"))
	if w.Code != http.StatusOK {
		t.Fatalf("status %d: %s", w.Code, w.Body)
	}
	if f := u.form(t); f.Get("query") != `up{namespace="team-a"}` || f.Get("time") != "5" {
		t.Errorf("upstream form = %v", f)
	}
}

// TestLabelValuesLeaveOutSetOnlyName: a policy of every metric of a
// namespace (`metrics: [".+"]`) sends label-values requests for the name
// upstream without its __name__=~".+", which the upstream would evaluate by
// merging the series of every name; other endpoints, and escaped names,
// keep it.
func TestLabelValuesLeaveOutSetOnlyName(t *testing.T) {
	h := newTestHandlerWith(t, `
apiVersion: observability.ethos.io/v1alpha1
kind: MetricAccess
metadata: {name: all, namespace: team-a}
spec:
  metricIsolation: true
  metrics: [".+"]
`)
	const all = `{__name__=~"(?s:.+)",namespace="team-a"}`
	for _, tc := range []struct{ path, want string }{
		{"/api/v1/label/__name__/values", `{namespace="team-a"}`},
		{"/api/v1/label/job/values", all},
		{"/api/v1/label/U__name__/values", all},
		{"/api/v1/labels", all},
	} {
		u := &upstream{}
		if w := serve(t, h, u, get(tc.path+"?start=1", "team-a")); w.Code != http.StatusOK {
			t.Fatalf("%s: %d %s", tc.path, w.Code, w.Body)
		}
		if got := u.form(t)["match[]"]; len(got) != 1 || got[0] != tc.want {
			t.Errorf("%s: upstream match[] %q, want %q", tc.path, got, tc.want)
		}
	}
}
