package tenancy

import (
	"encoding/json"
	"errors"
	"maps"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/prom-tenant/caddy-prom-tenant/internal/metricreg"
	"github.com/prom-tenant/caddy-prom-tenant/tenancy/v1alpha1"
)

// startTestApp runs an app over a directory with team-a (two objects, one
// copying its series), team-b (a regex-like = value), and a broken file, in
// the config Caddy serves until the test ends.
func startTestApp(t *testing.T) (*App, string) {
	t.Helper()
	dir := t.TempDir()
	writeFile(t, dir, "a.yaml", manifest("team-a", "app", "up")+"---\n"+manifest("team-a", "http", "http_requests_total")+
		"  metricIsolation: true\n  remoteWrite:\n    enabled: true\n    target: {type: prometheus, prometheus: {serviceName: prometheus, servicePort: 9090}}\n")
	writeFile(t, dir, "b.yaml", manifest("team-b", "api", `'{job="api",instance=".*"}'`))
	writeFile(t, dir, "broken.yaml", "spec: [")
	return serveDirectory(t, dir), dir
}

func getTenants(t *testing.T, target string) (int, TenantsView) {
	t.Helper()
	w := httptest.NewRecorder()
	err := (adminAPI{}).Routes()[0].Handler.ServeHTTP(w, httptest.NewRequest(http.MethodGet, target, nil))
	if err != nil {
		var ae caddy.APIError
		if !errors.As(err, &ae) {
			t.Fatal(err)
		}
		return ae.HTTPStatus, TenantsView{}
	}
	var v TenantsView
	if err := json.Unmarshal(w.Body.Bytes(), &v); err != nil {
		t.Fatalf("answer is not JSON: %q", w.Body)
	}
	return w.Code, v
}

// gauges gathers the tenancy collector through a pedantic registry (as
// Caddy's), keyed by name and labels.
func gauges(t *testing.T) map[string]float64 {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	if err := metricreg.Register(reg, collector); err != nil {
		t.Fatal(err)
	}
	if err := metricreg.Register(reg, collector); err != nil {
		t.Fatalf("registering twice (a second handler, a reload): %v", err)
	}
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, f := range fams {
		for _, m := range f.GetMetric() {
			key := f.GetName()
			for _, l := range m.GetLabel() {
				key += "{" + l.GetName() + "=" + l.GetValue() + "}"
			}
			out[key] = m.GetGauge().GetValue()
		}
	}
	return out
}

func TestAdminTenants(t *testing.T) {
	_, dir := startTestApp(t)
	status, got := getTenants(t, "/prom_tenant/tenants")
	if status != http.StatusOK {
		t.Fatalf("status %d", status)
	}
	a := filepath.Join(dir, "a.yaml")
	want := TenantsView{
		EqualityMatchers: v1alpha1.EqualityReading,
		Tenants: []TenantView{
			{Namespace: "team-a", InForce: true,
				Selectors: []string{`{__name__="http_requests_total",namespace="team-a"}`, `{__name__="up"}`},
				Objects: []ObjectView{
					{Name: "app", Source: a, InForce: true},
					{Name: "http", Source: a, InForce: true, RemoteWrite: true},
				}},
			{Namespace: "team-b", InForce: true, Selectors: []string{`{instance=".*",job="api"}`},
				Objects: []ObjectView{{Name: "api", Source: filepath.Join(dir, "b.yaml"), InForce: true, Warnings: []string{
					`spec.metrics[0]: instance=".*" is read literally, as PromQL reads =: it matches only the text ".*"; for a regular expression write instance=~".*"`,
				}}}},
		},
	}
	if len(got.Files) != 1 || got.Files[0].Source != filepath.Join(dir, "broken.yaml") || got.Files[0].Error == "" {
		t.Errorf("files = %+v, want broken.yaml with its error", got.Files)
	}
	got.Files = nil
	if !reflect.DeepEqual(got, want) {
		t.Errorf("tenants =\n%+v\nwant\n%+v", got, want)
	}

	_, got = getTenants(t, "/prom_tenant/tenants?namespace=team-b")
	if len(got.Tenants) != 1 || got.Tenants[0].Namespace != "team-b" || len(got.Files) != 1 {
		t.Errorf("?namespace=team-b: %+v, want team-b only, and the broken file", got)
	}
	_, got = getTenants(t, "/prom_tenant/tenants?namespace=team-z")
	if len(got.Tenants) != 0 {
		t.Errorf("?namespace=team-z: %+v, want no tenant", got.Tenants)
	}

	w := httptest.NewRecorder()
	if err := (adminAPI{}).Routes()[0].Handler.ServeHTTP(w, httptest.NewRequest(http.MethodPost, "/prom_tenant/tenants", nil)); err == nil ||
		err.(caddy.APIError).HTTPStatus != http.StatusMethodNotAllowed {
		t.Errorf("POST: %v, want 405", err)
	}
}

// TestAdminTenantsKubernetesRejections: a rejected Kubernetes object is
// listed under its namespace with its reason, also when the namespace has
// no tenant.
func TestAdminTenantsKubernetesRejections(t *testing.T) {
	app, _ := startTestApp(t)
	k := &KubernetesSource{watcher: &kubeWatcher{}}
	k.watcher.rejected.Store(&[]Rejection{
		{Namespace: "team-a", Name: "bad", Source: SourceKubernetes, Reason: ReasonInvalid, Error: "spec.metrics[0]: invalid regex"},
		{Namespace: "team-x", Name: "dup", Source: SourceKubernetes, Reason: ReasonDuplicate, Error: "also defined by a.yaml"},
	})
	app.Kubernetes = k
	t.Cleanup(func() { app.Kubernetes = nil }) // the fake watcher has nothing to stop
	_, got := getTenants(t, "/prom_tenant/tenants")
	if len(got.Tenants) != 3 {
		t.Fatalf("tenants %+v, want team-a, team-b, team-x", got.Tenants)
	}
	if objs := got.Tenants[0].Objects; len(objs) != 3 || !reflect.DeepEqual(objs[1], ObjectView{Name: "bad", Source: "kubernetes", Reason: "Invalid", Error: "spec.metrics[0]: invalid regex"}) {
		t.Errorf("team-a objects %+v, want the invalid one between app and http", objs)
	}
	if x := got.Tenants[2]; x.Namespace != "team-x" || x.InForce || len(x.Selectors) != 0 || len(x.Objects) != 1 || x.Objects[0].Reason != "Duplicate" {
		t.Errorf("team-x = %+v, want not in force with its duplicate object", x)
	}

	want := map[string]float64{
		"prometheus_proxy_tenants_active":                           2,
		"prometheus_proxy_metricaccess_rejected{source=directory}":  1,
		"prometheus_proxy_metricaccess_rejected{source=kubernetes}": 2,
		"prometheus_proxy_metricaccess_empty_files":                 0,
	}
	metrics := gauges(t)
	delete(metrics, "prometheus_proxy_metricaccess_empty_file_holds_total") // process-wide: other tests count too
	if !maps.Equal(metrics, want) {
		t.Errorf("metrics = %v, want %v", metrics, want)
	}
}

func TestMetricsWithoutRunningApp(t *testing.T) {
	if got := gauges(t); len(got) != 0 {
		t.Errorf("no app running, metrics %v; want none", got)
	}
}
