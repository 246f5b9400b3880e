package e2e

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/prom-tenant/caddy-prom-tenant/internal/testenv"
)

// opsCaddyfile is a proxy in front of prom with tenants from dir, the access
// log to accessLog, and every logger at debug level. marker is sent back in
// an X-Config header, so that two configurations differ (Caddy skips a
// reload to an equal one) and a response tells which one served it. With kubeconfig, a second site takes its upstreams from
// an API server that is never reachable: a discovery source for the admin
// route, that lists nothing.
func opsCaddyfile(admin, port int, dir, accessLog, promAddr, kubeconfig string, discoveryPort int, marker string) string {
	discovery := ""
	if kubeconfig != "" {
		discovery = fmt.Sprintf(`
http://127.0.0.1:%d {
	prom_tenant
	reverse_proxy {
		dynamic kubernetes {
			kubeconfig %s
			namespace monitoring
			selector app=prometheus
			port web
		}
	}
}
`, discoveryPort, kubeconfig)
	}
	return fmt.Sprintf(`{
	admin 127.0.0.1:%d
	debug
	prom_tenancy {
		directory %s {
			reload_interval 100ms
		}
	}
}

http://127.0.0.1:%d {
	log {
		output file %s
	}
	header X-Config %s
	prom_tenant
	reverse_proxy %s
}
%s`, admin, dir, port, accessLog, marker, promAddr, discovery)
}

// scrape reads Caddy's metrics from its admin endpoint.
func scrape(t *testing.T, c *testenv.Caddy) map[string]*familyValues {
	t.Helper()
	resp, err := http.Get(c.AdminURL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %s", resp.Status)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]*familyValues{}
	for name, mf := range fams {
		fv := &familyValues{}
		for _, m := range mf.GetMetric() {
			lbls := map[string]string{}
			for _, l := range m.GetLabel() {
				lbls[l.GetName()] = l.GetValue()
			}
			v := m.GetCounter().GetValue() + m.GetGauge().GetValue() + float64(m.GetHistogram().GetSampleCount())
			fv.series = append(fv.series, seriesValue{lbls, v})
		}
		out[name] = fv
	}
	return out
}

type seriesValue struct {
	labels map[string]string
	value  float64
}

type familyValues struct{ series []seriesValue }

// get returns the value of the series with exactly these labels; 0 when
// there is none (a counter not incremented yet).
func (f *familyValues) get(labels map[string]string) float64 {
	if f == nil {
		return 0
	}
	for _, s := range f.series {
		if len(s.labels) == len(labels) && mapsEqual(s.labels, labels) {
			return s.value
		}
	}
	return 0
}

// hasLabel reports whether a series has label name = value.
func (f *familyValues) hasLabel(name, value string) bool {
	if f == nil {
		return false
	}
	for _, s := range f.series {
		if s.labels[name] == value {
			return true
		}
	}
	return false
}

func mapsEqual(a, b map[string]string) bool {
	for k, v := range a {
		if bv, ok := b[k]; !ok || bv != v {
			return false
		}
	}
	return len(a) == len(b)
}

func reqLabels(tenant, endpoint, outcome, reason string) map[string]string {
	return map[string]string{"tenant": tenant, "endpoint": endpoint, "outcome": outcome, "reason": reason}
}

// TestOperabilityMetrics counts requests by tenant through the real binary,
// as Caddy's metrics endpoint reports them, across a config reload and a
// tenant's removal.
func TestOperabilityMetrics(t *testing.T) {
	prom := testenv.SharedPrometheus(t)
	dir := t.TempDir()
	for _, f := range []string{"team-a.yaml", "team-b.yaml"} {
		copyFile(t, filepath.Join(tenantsDir, f), filepath.Join(dir, f))
	}
	admin, port := testenv.FreePort(t), testenv.FreePort(t)
	accessLog := filepath.Join(t.TempDir(), "access.log")
	c := testenv.StartCaddy(t, opsCaddyfile(admin, port, dir, accessLog, prom.Addr, "", 0, "first"))
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	query := func(tenant string, n int) {
		t.Helper()
		for range n {
			do(t, request(t, "GET", base+"/api/v1/query?query=up", tenant, ""))
		}
	}

	fwdA := reqLabels("team-a", "/api/v1/query", "forwarded", "")
	unknown := reqLabels("_unknown", "/api/v1/query", "refused", "unknown_tenant")
	notFound := reqLabels("_unknown", "other", "refused", "not_found")
	backendA := map[string]string{"tenant": "team-a", "endpoint": "/api/v1/query", "code": "2xx"}

	m0 := scrape(t, c)
	if got := m0["prometheus_proxy_tenants_active"].get(map[string]string{}); got != 2 {
		t.Errorf("tenants_active = %v, want 2 (team-a, team-b)", got)
	}
	query("team-a", 3)
	query("team-b", 1)
	query("team-c", 2) // data, but no MetricAccess: refused, folded
	do(t, request(t, "GET", base+"/-/healthy", "team-a", ""))
	do(t, request(t, "GET", base+"/api/v1/targets/"+strings.Repeat("x", 40), "team-a", ""))

	m1 := scrape(t, c)
	for _, tc := range []struct {
		family string
		labels map[string]string
		delta  float64
	}{
		{"prometheus_proxy_requests_total", fwdA, 3},
		{"prometheus_proxy_request_duration_seconds", map[string]string{"tenant": "team-a", "endpoint": "/api/v1/query", "outcome": "forwarded"}, 3},
		{"prometheus_proxy_backend_requests_total", backendA, 3},
		{"prometheus_proxy_requests_total", unknown, 2},
		{"prometheus_proxy_requests_total", notFound, 2},
	} {
		if got := m1[tc.family].get(tc.labels) - m0[tc.family].get(tc.labels); got != tc.delta {
			t.Errorf("%s%v grew by %v, want %v", tc.family, tc.labels, got, tc.delta)
		}
	}
	if m1["prometheus_proxy_requests_total"].hasLabel("tenant", "team-c") {
		t.Error("an unknown tenant got its own label value")
	}
	for _, s := range m1["prometheus_proxy_requests_total"].series {
		if strings.Contains(s.labels["endpoint"], "targets") || strings.Contains(s.labels["endpoint"], "healthy") {
			t.Errorf("a raw path became a label value: %v", s.labels)
		}
	}

	// A reload to a different configuration: the counts go on from where they were.
	c.Reload(t, opsCaddyfile(admin, port, dir, accessLog, prom.Addr, "", 0, "second"))
	if _, _, h := do(t, request(t, "GET", base+"/api/v1/query?query=up", "team-a", "")); h.Get("X-Config") != "second" {
		t.Fatalf("X-Config %q after the reload: the new configuration does not serve", h.Get("X-Config"))
	}
	m2 := scrape(t, c)
	if got, want := m2["prometheus_proxy_requests_total"].get(fwdA), m1["prometheus_proxy_requests_total"].get(fwdA)+1; got != want {
		t.Errorf("after a reload, requests_total%v = %v, want %v (the value before the reload plus one)", fwdA, got, want)
	}
	if got, want := m2["prometheus_proxy_backend_requests_total"].get(backendA), m1["prometheus_proxy_backend_requests_total"].get(backendA)+1; got != want {
		t.Errorf("after a reload, backend_requests_total%v = %v, want %v", backendA, got, want)
	}

	// team-b leaves: its series go, team-a's stay.
	if !m2["prometheus_proxy_requests_total"].hasLabel("tenant", "team-b") {
		t.Fatal("team-b has no series before it leaves")
	}
	if err := os.Remove(filepath.Join(dir, "team-b.yaml")); err != nil {
		t.Fatal(err)
	}
	eventually(t, "team-b's series are deleted once it leaves the registry", 10*time.Second, func() bool {
		m := scrape(t, c)
		return m["prometheus_proxy_tenants_active"].get(map[string]string{}) == 1 &&
			!m["prometheus_proxy_requests_total"].hasLabel("tenant", "team-b") &&
			!m["prometheus_proxy_request_duration_seconds"].hasLabel("tenant", "team-b") &&
			!m["prometheus_proxy_backend_requests_total"].hasLabel("tenant", "team-b")
	})
	if got := scrape(t, c)["prometheus_proxy_requests_total"].get(fwdA); got != m2["prometheus_proxy_requests_total"].get(fwdA) {
		t.Errorf("team-a's count changed to %v when team-b left", got)
	}
}

// TestOperabilityAdminAndLogs: the admin routes answer on the real binary,
// and the access log has the tenant and refusal reason, rewrites only at
// debug level, and no credential even at debug level.
func TestOperabilityAdminAndLogs(t *testing.T) {
	prom := testenv.SharedPrometheus(t)
	dir := t.TempDir()
	copyFile(t, filepath.Join(tenantsDir, "team-a.yaml"), filepath.Join(dir, "team-a.yaml"))
	writeFile(t, filepath.Join(dir, "broken.yaml"), "apiVersion: observability.ethos.io/v1alpha1\nkind: MetricAccess\nspec: [broken\n")
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	writeFile(t, kubeconfig, `apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "http://127.0.0.1:1"}}]
users: [{name: u, user: {token: never-used}}]
contexts: [{name: c, context: {cluster: c, user: u}}]
current-context: c
`)
	admin, port := testenv.FreePort(t), testenv.FreePort(t)
	accessLog := filepath.Join(t.TempDir(), "access.log")
	c := testenv.StartCaddy(t, opsCaddyfile(admin, port, dir, accessLog, prom.Addr, kubeconfig, testenv.FreePort(t), "admin"))
	base := fmt.Sprintf("http://127.0.0.1:%d", port)

	// GET /prom_tenant/tenants
	var tenants struct {
		Tenants []struct {
			Namespace string   `json:"namespace"`
			InForce   bool     `json:"in_force"`
			Selectors []string `json:"selectors"`
			Objects   []struct {
				Name, Source string
			} `json:"objects"`
		} `json:"tenants"`
		Files []struct{ Source, Error string } `json:"files"`
	}
	adminGet(t, c.AdminURL+"/prom_tenant/tenants?namespace=team-a", &tenants)
	if len(tenants.Tenants) != 1 || tenants.Tenants[0].Namespace != "team-a" || !tenants.Tenants[0].InForce ||
		len(tenants.Tenants[0].Objects) == 0 || tenants.Tenants[0].Objects[0].Source != filepath.Join(dir, "team-a.yaml") ||
		len(tenants.Tenants[0].Selectors) == 0 || !strings.Contains(tenants.Tenants[0].Selectors[0], `namespace="team-a"`) {
		t.Errorf("tenants?namespace=team-a: %+v", tenants)
	}
	if len(tenants.Files) != 1 || tenants.Files[0].Source != filepath.Join(dir, "broken.yaml") || tenants.Files[0].Error == "" {
		t.Errorf("files: %+v, want broken.yaml with its error", tenants.Files)
	}
	// GET /prom_tenant/backends
	var backends struct {
		Sources []struct {
			Source   string `json:"source"`
			Synced   bool   `json:"synced"`
			Backends []any  `json:"backends"`
		} `json:"sources"`
	}
	adminGet(t, c.AdminURL+"/prom_tenant/backends", &backends)
	if len(backends.Sources) != 1 || backends.Sources[0].Source != "endpointslices monitoring app=prometheus port web" ||
		backends.Sources[0].Synced || len(backends.Sources[0].Backends) != 0 {
		t.Errorf("backends: %+v, want the one source, not synced (its API server is unreachable), no backend", backends)
	}

	// Logs.
	const token = "tok-3f9a1c-never-log-me"
	const password = "pw-77b2-never-log-me"
	r := request(t, "GET", base+"/api/v1/query?query=up", "team-a", "")
	r.Header.Set("Authorization", "Bearer "+token)
	do(t, r)
	r = request(t, "GET", base+"/api/v1/series?match[]=up", "team-a", "")
	r.SetBasicAuth("team-a", password)
	do(t, r)
	r = request(t, "GET", base+"/api/v1/query?query=up", "team-z", "")
	r.Header.Set("Authorization", "Bearer "+token)
	do(t, r)

	type accessEntry struct {
		Level   string `json:"level"`
		Msg     string `json:"msg"`
		Tenant  string `json:"tenant"`
		Refusal string `json:"refusal"`
		Request struct {
			URI string `json:"uri"`
		} `json:"request"`
	}
	var entries []accessEntry
	eventually(t, "three access log entries", 5*time.Second, func() bool {
		entries = nil
		for _, line := range strings.Split(readFile(t, accessLog), "\n") {
			var e accessEntry
			if json.Unmarshal([]byte(line), &e) == nil && e.Msg == "handled request" {
				entries = append(entries, e)
			}
		}
		return len(entries) >= 3
	})
	if e := entries[0]; e.Tenant != "team-a" || e.Refusal != "" {
		t.Errorf("forwarded request's access log: tenant %q, refusal %q; want team-a and none", e.Tenant, e.Refusal)
	}
	if e := entries[2]; e.Tenant != "team-z" || e.Refusal != "unknown_tenant" {
		t.Errorf("refused request's access log: tenant %q, refusal %q; want team-z, unknown_tenant", e.Tenant, e.Refusal)
	}

	all := readFile(t, accessLog) + readFile(t, c.LogPath)
	basic := base64.StdEncoding.EncodeToString([]byte("team-a:" + password))
	for _, secret := range []string{token, password, basic} {
		if strings.Contains(all, secret) {
			t.Errorf("a credential (%s) is in the logs", secret)
		}
	}
	// Rewrites are logged, at debug level only.
	var rewrites int
	for _, line := range strings.Split(readFile(t, c.LogPath), "\n") {
		var e struct{ Level, Msg string }
		if json.Unmarshal([]byte(line), &e) != nil || !strings.HasPrefix(e.Msg, "rewrote ") {
			continue
		}
		rewrites++
		if e.Level != "debug" {
			t.Errorf("rewrite logged at %s: %s", e.Level, line)
		}
	}
	if rewrites < 2 {
		t.Errorf("%d rewrite lines at debug level, want the query's and the match[]'s", rewrites)
	}
}

func adminGet(t *testing.T, url string, into any) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s %s", url, resp.Status, body)
	}
	if err := json.Unmarshal(body, into); err != nil {
		t.Fatalf("GET %s: %v: %s", url, err, body)
	}
}
