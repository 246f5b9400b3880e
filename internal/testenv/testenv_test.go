package testenv

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestMain(m *testing.M) { os.Exit(Run(m)) }

func TestFreePort(t *testing.T) {
	seen := map[int]bool{}
	for range 20 {
		p := FreePort(t)
		if p <= 0 || p > 65535 || seen[p] {
			t.Fatalf("FreePort = %d (seen before: %v)", p, seen[p])
		}
		seen[p] = true
	}
}

func TestRepoRoot(t *testing.T) {
	b, err := os.ReadFile(RepoRoot() + "/go.mod")
	if err != nil || !strings.Contains(string(b), "module github.com/prom-tenant/caddy-prom-tenant") {
		t.Fatalf("RepoRoot() = %s: go.mod %v", RepoRoot(), err)
	}
}

func TestRequireE2ESkips(t *testing.T) {
	t.Setenv(EnvE2E, "")
	ok := t.Run("inner", func(t *testing.T) {
		RequireE2E(t)
		t.Error("RequireE2E did not skip")
	})
	if !ok {
		t.Fatal("inner test failed")
	}
}

// vectorQuery runs an instant query at the end of p's data and returns the result.
func vectorQuery(t *testing.T, base string, p *Prometheus, query string, header http.Header) []map[string]string {
	t.Helper()
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, base+"/api/v1/query?"+url.Values{
		"query": {query}, "time": {strconv.FormatInt(p.End.Unix(), 10)},
	}.Encode(), nil)
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var r struct {
		Status string
		Data   struct {
			Result []struct {
				Metric map[string]string
				Value  [2]any
			}
		}
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil || r.Status != "success" {
		t.Fatalf("%s: %s, %v", query, r.Status, err)
	}
	var out []map[string]string
	for _, s := range r.Data.Result {
		s.Metric["value"] = s.Value[1].(string)
		out = append(out, s.Metric)
	}
	return out
}

func TestSharedPrometheus(t *testing.T) {
	p := SharedPrometheus(t)
	if p != SharedPrometheus(t) {
		t.Fatal("SharedPrometheus returned two instances")
	}
	if p.Series != 131 || p.End.Sub(p.Start) != time.Hour {
		t.Errorf("Series = %d, window %v..%v", p.Series, p.Start, p.End)
	}
	got := vectorQuery(t, p.URL, p, `count by (namespace) (up)`, nil)
	if len(got) != 4 {
		t.Errorf("count by (namespace) (up) = %v, want 4 namespaces", got)
	}
	if got := vectorQuery(t, p.URL, p, `db_password_len`, nil); len(got) != 1 || got[0]["value"] != "42" {
		t.Errorf("db_password_len = %v", got)
	}
	// Counters grow by whole numbers per 15s step: rate is exact.
	got = vectorQuery(t, p.URL, p, `rate(node_cpu_seconds_total{mode="idle"}[5m])`, nil)
	if len(got) != 1 || got[0]["value"] != "0.8" {
		t.Errorf("idle CPU rate = %v, want 0.8", got)
	}
	// The remote-write receiver is on (404 when it is off; 400 or 415 for this empty body).
	resp, err := http.Post(p.URL+"/api/v1/write", "application/x-protobuf", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode == http.StatusNotFound {
		t.Error("remote-write receiver is not enabled")
	}
}

func TestStartPrometheusWithKeep(t *testing.T) {
	full := SharedPrometheus(t)
	only := StartPrometheusWith(t, PrometheusOptions{
		Start: full.Start, End: full.End,
		Keep: func(s map[string]string) bool { return s["namespace"] == "team-a" && s["__name__"] == "up" },
	})
	if only.Series != 4 {
		t.Errorf("Series = %d, want 4", only.Series)
	}
	want := vectorQuery(t, full.URL, full, `up{namespace="team-a"}`, nil)
	got := vectorQuery(t, only.URL, only, `{__name__=~".+"}`, nil)
	if fmt.Sprint(sorted(got)) != fmt.Sprint(sorted(want)) {
		t.Errorf("tenant-only Prometheus:\n got %v\nwant %v", got, want)
	}
}

func sorted(ms []map[string]string) []string {
	var out []string
	for _, m := range ms {
		out = append(out, fmt.Sprint(m)) // fmt sorts map keys
	}
	slices.Sort(out)
	return out
}

// TestCaddy needs only standard modules, so it checks the harness even before the
// project's handler exists.
func TestCaddy(t *testing.T) {
	p := SharedPrometheus(t)
	admin, site := FreePort(t), FreePort(t)
	caddyfile := func(upstream string) string {
		return fmt.Sprintf("{\n\tadmin 127.0.0.1:%d\n}\n:%d {\n\treverse_proxy %s\n}\n", admin, site, upstream)
	}
	c := StartCaddy(t, caddyfile(p.Addr))
	proxy := "http://127.0.0.1:" + strconv.Itoa(site)
	if got := vectorQuery(t, proxy, p, `count(up)`, nil); len(got) != 1 || got[0]["value"] != "16" {
		t.Errorf("count(up) through caddy = %v", got)
	}

	// Point the site at a dead upstream: the reload must take effect before Reload returns.
	c.Reload(t, caddyfile("127.0.0.1:"+strconv.Itoa(FreePort(t))))
	// The reload closes the old server's keep-alive connections; a pooled one
	// could be reused and read as EOF. A new connection the old server
	// accepted just before it stopped is closed too (EOF): a client asks
	// again, as this does, a few times.
	http.DefaultClient.CloseIdleConnections()
	var resp *http.Response
	var err error
	for try := 0; try < 5; try++ {
		if resp, err = http.Get(proxy + "/-/ready"); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadGateway {
		t.Errorf("after reload: %s, want 502", resp.Status)
	}

	c.Stop()
	if _, err := get(context.Background(), c.AdminURL+"/config/"); err == nil {
		t.Error("admin still answers after Stop")
	}
}

func TestStartCaddyNeedsAdmin(t *testing.T) {
	RequireE2E(t)
	c := &Caddy{dir: t.TempDir()}
	_, _, err := c.adapt(t.Context(), ":8080 {\n\trespond ok\n}\n")
	if err == nil || !strings.Contains(err.Error(), "admin address") {
		t.Errorf("adapt without admin: %v", err)
	}
}

// TestCaddyLeavesTrustStoreAlone starts a site that gets a certificate from Caddy's local
// CA, which would install the CA's root in the system trust store if StartCaddy let it.
func TestCaddyLeavesTrustStoreAlone(t *testing.T) {
	RequireE2E(t)
	c := StartCaddy(t, fmt.Sprintf("{\n\tadmin 127.0.0.1:%d\n}\nhttps://127.0.0.1:%d {\n\ttls internal\n\trespond ok\n}\n", FreePort(t), FreePort(t)))
	c.Stop()
	log, err := os.ReadFile(c.LogPath)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(log), "installing root certificate") {
		t.Error("caddy installed its root certificate into the trust store")
	}
}
