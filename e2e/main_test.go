// Package e2e drives the built bin/caddy against real Prometheus servers. The
// reference for every answer is an oracle: a Prometheus backfilled with only
// the tenant's allowed series, which is the definition of what the tenant may
// see. Run with PROM_TENANT_E2E=1 (make test does).
package e2e

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/prometheus/client_golang/api"
	v1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/prometheus/model/labels"

	"github.com/prom-tenant/caddy-prom-tenant/internal/testenv"
	"github.com/prom-tenant/caddy-prom-tenant/tenancy"
)

// Parallel tests: a test that spends most of its time waiting (for copy
// intervals, scrapes, a receiver outage) and starts its own processes runs in
// parallel with the others like it (make test passes -parallel 4), after the
// sequential tests; this keeps the package's run time near its longest test
// rather than their sum. Parallel tests run only with each other, so two of
// them must not share Kubernetes objects or change shared data.
func TestMain(m *testing.M) { os.Exit(testenv.Run(m)) }

// tenantsDir holds the example MetricAccess manifests the README shows.
var tenantsDir = filepath.Join(testenv.RepoRoot(), "examples", "tenants")

// proxy is a running bin/caddy in front of the shared Prometheus.
type proxy struct {
	caddy     *testenv.Caddy
	url       string // the prom_tenant site
	prom      *testenv.Prometheus
	caddyfile string // as started
}

func startProxy(t *testing.T, tenants string, extraSites string) *proxy {
	t.Helper()
	return startProxyTo(t, testenv.SharedPrometheus(t), tenants, extraSites)
}

// startProxyTo runs bin/caddy with prom_tenant in front of prom. extraSites
// are more Caddyfile sites; {prometheus} in them is prom's address.
func startProxyTo(t *testing.T, prom *testenv.Prometheus, tenants string, extraSites string) *proxy {
	t.Helper()
	return startProxyWith(t, prom, fmt.Sprintf("directory %s {\n\t\t\treload_interval 100ms\n\t\t}", tenants), extraSites)
}

// startProxyWith runs bin/caddy with the given prom_tenancy sources.
func startProxyWith(t *testing.T, prom *testenv.Prometheus, sources string, extraSites string) *proxy {
	t.Helper()
	p := startProxyToUpstream(t, prom.Addr, sources, extraSites)
	p.prom = prom
	return p
}

// startProxyToUpstream is startProxyWith in front of any upstream address (a
// Thanos Query Frontend): the proxy's prom is nil.
func startProxyToUpstream(t *testing.T, upstream string, sources string, extraSites string) *proxy {
	t.Helper()
	return startProxyOptions(t, upstream, sources, "", extraSites)
}

// startProxyOptions is startProxyToUpstream with options in prom_tenant's
// block (backend, replica_labels, backend_params).
func startProxyOptions(t *testing.T, upstream, sources, options, extraSites string) *proxy {
	t.Helper()
	port, admin := testenv.FreePort(t), testenv.FreePort(t)
	caddyfile := fmt.Sprintf(`{
	admin 127.0.0.1:%d
	prom_tenancy {
		%s
	}
}

http://127.0.0.1:%d {
	prom_tenant {
		%s
	}
	reverse_proxy %s
}
%s`, admin, sources, port, options, upstream, strings.ReplaceAll(extraSites, "{prometheus}", upstream))
	c := testenv.StartCaddy(t, caddyfile)
	return &proxy{caddy: c, url: fmt.Sprintf("http://127.0.0.1:%d", port), caddyfile: caddyfile}
}

// tenantHeader is an http.RoundTripper that says which tenant a request is for.
type tenantHeader struct {
	tenant string
	next   http.RoundTripper
}

func (h tenantHeader) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	if h.tenant != "" {
		r.Header.Set("X-Tenant-Namespace", h.tenant)
	}
	return h.next.RoundTrip(r)
}

func newAPI(t *testing.T, url, tenant string) v1.API {
	t.Helper()
	c, err := api.NewClient(api.Config{Address: url, RoundTripper: tenantHeader{tenant, http.DefaultTransport}})
	if err != nil {
		t.Fatal(err)
	}
	return v1.NewAPI(c)
}

// loadPolicies compiles a directory of manifests with the proxy's own code.
func loadPolicies(t *testing.T, dir string) *tenancy.Registry {
	t.Helper()
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	t.Cleanup(cancel)
	app := &tenancy.App{Directory: &tenancy.DirectorySource{Path: dir}}
	if err := app.Provision(ctx); err != nil {
		t.Fatal(err)
	}
	return app.Registry()
}

// startOracle starts a Prometheus holding only the series the tenant's policy
// allows, over the same window as the shared one.
func startOracle(t *testing.T, shared *testenv.Prometheus, reg *tenancy.Registry, tenant string) (v1.API, string) {
	t.Helper()
	return startOracleWith(t, shared, reg, tenant, "")
}

// startOracleWith is startOracle running binary (default: Debian's 2.42).
func startOracleWith(t *testing.T, shared *testenv.Prometheus, reg *tenancy.Registry, tenant, binary string) (v1.API, string) {
	t.Helper()
	return startOracleOver(t, shared.Start, shared.End, reg, tenant, binary)
}

// startOracleOver is startOracleWith for data in [start, end].
func startOracleOver(t *testing.T, start, end time.Time, reg *tenancy.Registry, tenant, binary string) (v1.API, string) {
	t.Helper()
	tn, ok := reg.Lookup(tenant)
	if !ok {
		t.Fatalf("tenant %s has no policy", tenant)
	}
	o := testenv.StartPrometheusWith(t, testenv.PrometheusOptions{
		Start: start, End: end, Binary: binary,
		Keep: func(series map[string]string) bool { return tn.Policy.Matches(labels.FromMap(series)) },
	})
	return newAPI(t, o.URL, ""), o.URL
}
