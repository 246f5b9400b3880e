package promtenant

import (
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"

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
	for _, tc := range refusalCases(t) {
		outcome := tc.outcome
		if outcome == "" {
			outcome = outcomeRefused
		}
		t.Run(tc.name, func(t *testing.T) {
			before := requests(tc.tenant, tc.endpoint, outcome, tc.reason)
			w := serveRefusal(t, h, tc)
			if got := requests(tc.tenant, tc.endpoint, outcome, tc.reason) - before; got != 1 {
				t.Errorf("requests_total{tenant=%q,endpoint=%q,outcome=%q,reason=%q} grew by %v, want 1 (answer %d %s)",
					tc.tenant, tc.endpoint, outcome, tc.reason, got, w.Code, w.Body)
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

	// team-b comes back: its requests count in live series again, not in
	// the deleted ones the handler resolved before.
	serve(t, h, &upstream{}, get("/api/v1/query?query=up", "team-b"))
	if got := requests("team-b", "/api/v1/query", outcomeForwarded, ""); got != 1 {
		t.Errorf("team-b's forwarded requests after it came back: %v, want 1", got)
	}
	if got := backendRequests("team-b", "/api/v1/query", "2xx"); got != 1 {
		t.Errorf("team-b's backend requests after it came back: %v, want 1", got)
	}
	if got := observations(t, "team-b", "/api/v1/query", outcomeForwarded); got != 1 {
		t.Errorf("team-b's observed durations after it came back: %v, want 1", got)
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

// TestPruneDuringResolveIsNotRemembered: a prune that comes between a
// request resolving its tenant's series and storing them deletes those
// series; later requests of the tenant must count in live series, not in
// the deleted ones.
func TestPruneDuringResolveIsNotRemembered(t *testing.T) {
	const tenant, endpoint = "team-race", "/api/v1/query"
	afterServedResolve = func() { deleteTenantSeries([]string{tenant}) }
	s := servedSeriesOf(tenant, endpoint)
	afterServedResolve = nil
	s.requests.Inc() // the racing request: in the deleted series, lost

	for range 2 {
		servedSeriesOf(tenant, endpoint).requests.Inc()
	}
	if got := requests(tenant, endpoint, outcomeForwarded, ""); got != 2 {
		t.Errorf("forwarded requests after the prune: %v, want 2 (counted in live series)", got)
	}
	t.Cleanup(func() { deleteTenantSeries([]string{tenant}) })
}
