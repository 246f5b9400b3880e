package promtenant

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/prometheus/promql/parser"

	"github.com/prom-tenant/caddy-prom-tenant/rewrite"
	"github.com/prom-tenant/caddy-prom-tenant/tenancy"
)

// requests is the current value of prometheus_proxy_requests_total{...}.
func requests(tenant, endpoint, outcome, reason string) float64 {
	return testutil.ToFloat64(metrics.requests.WithLabelValues(tenant, endpoint, outcome, reason))
}

func backendRequests(tenant, endpoint, code string) float64 {
	return testutil.ToFloat64(metrics.backend.WithLabelValues(tenant, endpoint, code))
}

// observations is the sample count of the duration histogram's series.
func observations(t *testing.T, tenant, endpoint, outcome string) uint64 {
	t.Helper()
	var m dto.Metric
	if err := metrics.duration.WithLabelValues(tenant, endpoint, outcome).(prometheus.Metric).Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetHistogram().GetSampleCount()
}

func TestRequestMetricsByOutcome(t *testing.T) {
	h := newTestHandler(t)
	for _, tc := range []struct {
		name                              string
		req                               *http.Request
		respond                           func(http.ResponseWriter, *http.Request) error
		tenant, endpoint, outcome, reason string
		backendCode                       string // "" when nothing reaches the upstream
		backendCount                      float64
	}{
		{name: "forwarded query", req: get("/api/v1/query?query=up", "team-a"),
			tenant: "team-a", endpoint: "/api/v1/query", outcome: "forwarded", backendCode: "2xx", backendCount: 1},
		{name: "label values by pattern, never the raw path", req: get("/api/v1/label/job/values", "team-b"),
			tenant: "team-b", endpoint: "/api/v1/label/:name/values", outcome: "forwarded", backendCode: "2xx", backendCount: 1},
		{name: "upstream's own error is forwarded", req: get("/api/v1/query_range?query=up", "team-a"),
			respond: func(w http.ResponseWriter, _ *http.Request) error {
				w.WriteHeader(http.StatusServiceUnavailable)
				return nil
			},
			tenant: "team-a", endpoint: "/api/v1/query_range", outcome: "forwarded", backendCode: "5xx", backendCount: 1},
		{name: "upstream unreachable", req: get("/api/v1/series?match[]=up", "team-a"),
			respond: func(http.ResponseWriter, *http.Request) error {
				return caddyhttp.Error(http.StatusBadGateway, errors.New("connection refused"))
			},
			tenant: "team-a", endpoint: "/api/v1/series", outcome: "upstream_error", reason: "upstream", backendCode: "error", backendCount: 1},
		{name: "metadata hands on two requests", req: get("/api/v1/metadata", "team-a"),
			respond: func(w http.ResponseWriter, r *http.Request) error {
				data := `{"resultType":"vector","result":[]}`
				if r.URL.Path == "/api/v1/targets/metadata" {
					data = `[{"target":{"instance":"a:80","job":"app"},"metric":"up","type":"gauge","help":"","unit":""}]`
				}
				_, err := w.Write([]byte(`{"status":"success","data":` + data + `}`))
				return err
			},
			tenant: "team-a", endpoint: "/api/v1/metadata", outcome: "forwarded", backendCode: "2xx", backendCount: 2},
		{name: "unknown tenant folds", req: get("/api/v1/query?query=up", "team-c"),
			tenant: unknownTenant, endpoint: "/api/v1/query", outcome: "refused", reason: "unknown_tenant"},
		{name: "unserved path folds", req: get("/api/v1/targets/metadata/secret", "team-a"),
			tenant: unknownTenant, endpoint: "other", outcome: "refused", reason: "not_found"},
		{name: "known tenant, bad query", req: get("/api/v1/query?query=sum(", "team-a"),
			tenant: "team-a", endpoint: "/api/v1/query", outcome: "refused", reason: "bad_query"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := requests(tc.tenant, tc.endpoint, tc.outcome, tc.reason)
			obsBefore := observations(t, tc.tenant, tc.endpoint, tc.outcome)
			var backendBefore float64
			if tc.backendCode != "" {
				backendBefore = backendRequests(tc.tenant, tc.endpoint, tc.backendCode)
			}
			serve(t, h, &upstream{respond: tc.respond}, tc.req)
			if got := requests(tc.tenant, tc.endpoint, tc.outcome, tc.reason) - before; got != 1 {
				t.Errorf("requests_total{tenant=%q,endpoint=%q,outcome=%q,reason=%q} grew by %v, want 1", tc.tenant, tc.endpoint, tc.outcome, tc.reason, got)
			}
			if got := observations(t, tc.tenant, tc.endpoint, tc.outcome) - obsBefore; got != 1 {
				t.Errorf("duration histogram got %d observations, want 1", got)
			}
			if tc.backendCode != "" {
				if got := backendRequests(tc.tenant, tc.endpoint, tc.backendCode) - backendBefore; got != tc.backendCount {
					t.Errorf("backend_requests_total{code=%q} grew by %v, want %v", tc.backendCode, got, tc.backendCount)
				}
			}
		})
	}
}

// TestRefusalReasons: every refusal is counted under its reason, and the
// label values never come from the client. The reasons are metric label
// values and the access log's "refusal" field: dashboards and alerts rely
// on them, so each refusal's reason is pinned here.
func TestRefusalReasons(t *testing.T) {
	h := newTestHandler(t)
	h.enforcer = rewrite.NewEnforcer(parser.Options{EnableExperimentalFunctions: true}) // info() parses, then is refused
	tinyUnions := newTestHandler(t)
	tinyUnions.enforcer = tinyUnions.enforcer.WithLimits(rewrite.Limits{MaxUnionSelectors: 2})
	small := newTestHandler(t)
	small.enforcer = small.enforcer.WithLimits(rewrite.Limits{MaxRewrittenSize: 16})
	smallCap := newTestHandler(t)
	smallCap.MaxMetadataResponse = 1024
	jsonBody := post("/api/v1/query", "team-a", `{"query":"up"}`)
	jsonBody.Header.Set("Content-Type", "application/json")
	slowBody := post("/api/v1/query", "team-a", "")
	slowBody.Body = io.NopCloser(iotest.ErrReader(&net.OpError{Op: "read", Net: "tcp", Err: os.ErrDeadlineExceeded}))
	manyMatch := "/api/v1/series?" + strings.Repeat("match[]=up&", 1001) + "match[]=up"
	gone, cancel := context.WithCancel(context.Background())
	cancel()
	canceled := get("/api/v1/series?"+strings.Repeat("match[]=up&", 10)+"match[]=up", "team-b").WithContext(gone)
	past, cancelPast := context.WithDeadline(context.Background(), time.Unix(0, 0))
	defer cancelPast()
	expired := get("/api/v1/series?"+strings.Repeat("match[]=up&", 10)+"match[]=up", "team-b").WithContext(past)
	down := &upstream{respond: func(http.ResponseWriter, *http.Request) error {
		return caddyhttp.Error(http.StatusBadGateway, errors.New("connection refused"))
	}}
	noTargetMetadata := &upstream{respond: func(w http.ResponseWriter, _ *http.Request) error {
		w.WriteHeader(http.StatusNotFound)
		_, err := w.Write([]byte(`{"status":"error","errorType":"not_found","error":"not found"}`))
		return err
	}}
	bigAnswer := &upstream{respond: func(w http.ResponseWriter, _ *http.Request) error {
		_, err := w.Write([]byte(`{"status":"success","data":[` + strings.Repeat(" ", 4096)))
		return err
	}}
	q := func(query string) string { return "/api/v1/query?query=" + url.QueryEscape(query) }
	for _, tc := range []struct {
		h                *Handler
		next             *upstream // one that answers: the request is handed on
		req              *http.Request
		tenant, endpoint string
		outcome, reason  string
	}{
		{req: get(q("up"), ""), tenant: unknownTenant, endpoint: "/api/v1/query", reason: "no_tenant"},
		{req: get(q("up"), "team-c"), tenant: unknownTenant, endpoint: "/api/v1/query", reason: "unknown_tenant"},
		{req: get(q("up"), "team-a,team-b"), tenant: unknownTenant, endpoint: "/api/v1/query", reason: "bad_tenant"},
		{req: get(q("up"), "Team_A"), tenant: unknownTenant, endpoint: "/api/v1/query", reason: "bad_tenant"},
		{req: get("/-/healthy", "team-a"), tenant: unknownTenant, endpoint: "other", reason: "not_found"},
		{req: get("/api/v1/label/a-b/values", "team-a"), tenant: unknownTenant, endpoint: "other", reason: "not_found"},
		{req: post("/federate", "team-a", "match[]=up"), tenant: unknownTenant, endpoint: "/federate", reason: "method"},
		{req: get("/api/v1/query?query=up&query=x", "team-a"), tenant: "team-a", endpoint: "/api/v1/query", reason: "bad_request"},
		{req: get("/api/v1/query", "team-a"), tenant: "team-a", endpoint: "/api/v1/query", reason: "bad_request"},
		{req: get("/api/v1/series", "team-a"), tenant: "team-a", endpoint: "/api/v1/series", reason: "bad_request"},
		{req: get(q("up")+"&dedup=false", "team-a"), tenant: "team-a", endpoint: "/api/v1/query", reason: "bad_request"},
		{req: post(q("up"), "team-a", "query=db_password_len"), tenant: "team-a", endpoint: "/api/v1/query", reason: "bad_request"},
		{req: get("/api/v1/query?query=up;time=1", "team-a"), tenant: "team-a", endpoint: "/api/v1/query", reason: "bad_request"},
		{req: post("/api/v1/query", "team-a", "query=%zz"), tenant: "team-a", endpoint: "/api/v1/query", reason: "bad_request"},
		{req: slowBody, tenant: "team-a", endpoint: "/api/v1/query", reason: "bad_request"},
		{req: get("/api/v1/metadata?limit=ten", "team-a"), tenant: "team-a", endpoint: "/api/v1/metadata", reason: "bad_request"},
		{req: get(q("sum("), "team-a"), tenant: "team-a", endpoint: "/api/v1/query", reason: "bad_query"},
		{req: get(q(`{namespace="team-b"}[5m]`), "team-b"), tenant: "team-b", endpoint: "/api/v1/query", reason: "irreducible_union"},
		{req: get(q(`info(up)`), "team-a"), tenant: "team-a", endpoint: "/api/v1/query", reason: "unsupported"},
		{req: post("/api/v1/query", "team-a", "query="+strings.Repeat("a", 2<<20)), tenant: "team-a", endpoint: "/api/v1/query", reason: "body_too_large"},
		{req: jsonBody, tenant: "team-a", endpoint: "/api/v1/query", reason: "content_type"},
		{h: tinyUnions, req: get(q(`{namespace="team-b"} + {namespace="team-b"}`), "team-b"), tenant: "team-b", endpoint: "/api/v1/query", reason: "limit"},
		{req: post("/api/v1/query", "team-a", "query="+strings.Repeat("up+", 30000)+"up"), tenant: "team-a", endpoint: "/api/v1/query", reason: "limit"},
		{req: get(q(strings.Repeat("-", 500)+"up"), "team-a"), tenant: "team-a", endpoint: "/api/v1/query", reason: "limit"},
		{req: get(manyMatch, "team-a"), tenant: "team-a", endpoint: "/api/v1/series", reason: "limit"},
		{h: small, req: get(q("up"), "team-a"), tenant: "team-a", endpoint: "/api/v1/query", reason: "limit"},
		{req: canceled, tenant: "team-b", endpoint: "/api/v1/series", reason: "canceled"},
		{req: expired, tenant: "team-b", endpoint: "/api/v1/series", reason: "canceled"},
		{h: smallCap, next: bigAnswer, req: get("/api/v1/metadata", "team-a"), tenant: "team-a", endpoint: "/api/v1/metadata", reason: "too_large"},
		{next: noTargetMetadata, req: get("/api/v1/metadata", "team-a"), tenant: "team-a", endpoint: "/api/v1/metadata", outcome: "upstream_error", reason: "upstream"},
		{next: down, req: get(q("up"), "team-a"), tenant: "team-a", endpoint: "/api/v1/query", outcome: "upstream_error", reason: "upstream"},
	} {
		if tc.outcome == "" {
			tc.outcome = "refused"
		}
		t.Run(tc.reason+" "+tc.req.URL.Path, func(t *testing.T) {
			hh := tc.h
			if hh == nil {
				hh = h
			}
			u := tc.next
			if u == nil {
				u = &upstream{}
			}
			before := requests(tc.tenant, tc.endpoint, tc.outcome, tc.reason)
			w := serve(t, hh, u, tc.req)
			if (tc.next == nil && u.got != nil) || w.Code < 400 {
				t.Fatalf("not refused: %d %s", w.Code, w.Body)
			}
			if got := requests(tc.tenant, tc.endpoint, tc.outcome, tc.reason) - before; got != 1 {
				t.Errorf("requests_total{tenant=%q,endpoint=%q,outcome=%q,reason=%q} grew by %v, want 1 (answer %d %s)",
					tc.tenant, tc.endpoint, tc.outcome, tc.reason, got, w.Code, w.Body)
			}
		})
	}
}

// TestSeriesOfGoneTenantsAreDeleted: once a tenant leaves the registry, its
// series go; the others' stay.
func TestSeriesOfGoneTenantsAreDeleted(t *testing.T) {
	h := newTestHandler(t)
	serve(t, h, &upstream{}, get("/api/v1/query?query=up", "team-a"))
	serve(t, h, &upstream{}, get("/api/v1/query?query=up", "team-b"))
	serve(t, h, &upstream{}, get("/api/v1/query?query=up", "team-c"))
	// has: the tenant has series (all tenants are stale to an empty registry).
	has := func(tenant string) bool {
		for _, s := range staleTenants(new(tenancy.Registry)) {
			if s == tenant {
				return true
			}
		}
		return false
	}
	if !has("team-a") || !has("team-b") {
		t.Fatal("team-a and team-b have no series after their requests")
	}
	onlyA := tenantsRegistry(t, `
apiVersion: observability.ethos.io/v1alpha1
kind: MetricAccess
metadata: {name: app, namespace: team-a}
spec: {metrics: [up]}
`)
	pruneStale(onlyA)
	if has("team-b") {
		t.Error("team-b left the registry but still has series")
	}
	if !has("team-a") {
		t.Error("team-a is in the registry but lost its series")
	}
	if got := requests(unknownTenant, "/api/v1/query", "refused", "unknown_tenant"); got == 0 {
		t.Error("the folded _unknown series was deleted")
	}
}

// tenantsRegistry is the registry of one manifest file, read by the real
// directory source.
func tenantsRegistry(t *testing.T, manifests string) *tenancy.Registry {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "tenants.yaml"), []byte(manifests), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	t.Cleanup(cancel)
	app := &tenancy.App{Directory: &tenancy.DirectorySource{Path: dir}}
	if err := app.Provision(ctx); err != nil {
		t.Fatal(err)
	}
	return app.Registry()
}
