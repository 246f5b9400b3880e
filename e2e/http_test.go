package e2e

import (
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// envelope is Prometheus's API answer, error or not.
type envelope struct {
	Status    string          `json:"status"`
	ErrorType string          `json:"errorType"`
	Error     string          `json:"error"`
	Data      json.RawMessage `json:"data"`
}

func do(t *testing.T, req *http.Request) (int, envelope, http.Header) {
	t.Helper()
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var env envelope
	if err := json.Unmarshal(body, &env); err != nil {
		t.Fatalf("%s %s: answer %d is not JSON: %q", req.Method, req.URL, resp.StatusCode, body)
	}
	return resp.StatusCode, env, resp.Header
}

func request(t *testing.T, method, target, tenant, body string) *http.Request {
	t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(t.Context(), method, target, r)
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	if tenant != "" {
		req.Header.Set("X-Tenant-Namespace", tenant)
	}
	return req
}

func TestRefusalsThroughCaddy(t *testing.T) {
	p := startProxy(t, tenantsDir, "")
	repeated := request(t, "GET", p.url+"/api/v1/query?query=up", "team-a", "")
	repeated.Header.Add("X-Tenant-Namespace", "team-b")
	for _, tc := range []struct {
		name      string
		req       *http.Request
		status    int
		errorType string
		contains  string
	}{
		{"no tenant", request(t, "GET", p.url+"/api/v1/query?query=up", "", ""), 401, "unauthorized", "no tenant"},
		{"namespace with data but no MetricAccess", request(t, "GET", p.url+"/api/v1/query?query=up", "team-c", ""), 403, "forbidden", "unknown tenant"},
		{"repeated tenant header", repeated, 400, "bad_data", "more than one tenant"},
		{"health endpoint", request(t, "GET", p.url+"/-/healthy", "team-a", ""), 404, "not_found", "not served"},
		{"metrics endpoint", request(t, "GET", p.url+"/metrics", "team-a", ""), 404, "not_found", "not served"},
		{"root", request(t, "GET", p.url+"/", "team-a", ""), 404, "not_found", "not served"},
		{"targets", request(t, "GET", p.url+"/api/v1/targets", "team-a", ""), 404, "not_found", "not served"},
		{"series without match[]", request(t, "GET", p.url+"/api/v1/series", "team-a", ""), 400, "bad_data", "no match[]"},
		{"federate without match[]", request(t, "GET", p.url+"/federate", "team-a", ""), 400, "bad_data", "no match[]"},
		{"form that does not parse", request(t, "POST", p.url+"/api/v1/query", "team-a", "query=%zz"), 400, "bad_data", "cannot parse the request body"},
		{"URL and body disagree", request(t, "POST", p.url+"/api/v1/query?query=up", "team-a", "query=db_password_len"), 400, "bad_data", "different values"},
		{"range selector over a union", request(t, "GET", p.url+"/api/v1/query?query="+url.QueryEscape(`{namespace="team-b"}[5m]`), "team-b", ""), 400, "bad_data", "PromQL has no union of range vectors"},
		{"a time Prometheus would refuse", request(t, "GET", p.url+"/api/v1/query?query=up&time=yesterday", "team-a", ""), 400, "bad_data", `invalid parameter "time": invalid time value for 'time': cannot parse "yesterday"`},
		// prom_tenant does not check the number of points; Prometheus does.
		{"upstream's own errors pass through", request(t, "GET", p.url+"/api/v1/query_range?query=up&start=0&end=100000&step=1", "team-a", ""), 400, "bad_data", "exceeded maximum resolution of 11,000 points"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, env, _ := do(t, tc.req)
			if status != tc.status || env.Status != "error" || env.ErrorType != tc.errorType || !strings.Contains(env.Error, tc.contains) {
				t.Errorf("got %d %+v; want %d, errorType %q, error containing %q", status, env, tc.status, tc.errorType, tc.contains)
			}
		})
	}
}

// TestPolicyWrittenByHand compares the proxy with the shared Prometheus asked
// the same question with the policy's matchers written out by hand.
func TestPolicyWrittenByHand(t *testing.T) {
	p := startProxy(t, tenantsDir, "")
	at := fmt.Sprint(p.prom.End.Add(-time.Minute).Unix())
	for _, tc := range []struct{ tenant, query, byHand string }{
		{"team-a", `up`, `up{namespace="team-a"}`},
		{"team-a", `sum by (job) (http_requests_total)`, `sum by (job) (http_requests_total{namespace="team-a"})`},
		{"team-b", `up`, `up{namespace="team-b",job="api"}`},
		{"team-b", `count(process_resident_memory_bytes)`, `count(process_resident_memory_bytes{namespace="team-b",job="api"})`},
		{"team-b", `db_password_len`, `db_password_len unless db_password_len`},
	} {
		_, got, _ := do(t, request(t, "GET", p.url+"/api/v1/query?"+url.Values{"query": {tc.query}, "time": {at}}.Encode(), tc.tenant, ""))
		_, want, _ := do(t, request(t, "GET", p.prom.URL+"/api/v1/query?"+url.Values{"query": {tc.byHand}, "time": {at}}.Encode(), "", ""))
		if got.Status != "success" || string(got.Data) != string(want.Data) {
			t.Errorf("%s %s: proxy %s %s, by hand %s", tc.tenant, tc.query, got.Status, got.Data, want.Data)
		}
		if tc.query != `db_password_len` && !strings.Contains(string(want.Data), `"value"`) {
			t.Errorf("%s: the hand-written query found nothing, so the comparison proves nothing", tc.byHand)
		}
	}
}

func TestGzipStreamsThrough(t *testing.T) {
	p := startProxy(t, tenantsDir, "")
	req := request(t, "GET", p.url+"/api/v1/query?query=up", "team-a", "")
	req.Header.Set("Accept-Encoding", "gzip")
	resp, err := (&http.Transport{DisableCompression: true}).RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.Header.Get("Content-Encoding") != "gzip" {
		t.Fatalf("Content-Encoding %q: the upstream's compressed answer was not passed through", resp.Header.Get("Content-Encoding"))
	}
	zr, err := gzip.NewReader(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(zr)
	if !strings.Contains(string(body), `"namespace":"team-a"`) || strings.Contains(string(body), "team-b") {
		t.Errorf("gzip answer: %s", body)
	}
}

func TestSmallEndpoints(t *testing.T) {
	p := startProxy(t, tenantsDir, "")
	status, env, _ := do(t, request(t, "GET", p.url+"/api/v1/status/buildinfo", "team-a", ""))
	if status != 200 || !strings.Contains(string(env.Data), `"version"`) {
		t.Errorf("buildinfo: %d %s", status, env.Data)
	}
	q := url.Values{"query": {`http_requests_total`}, "start": {fmt.Sprint(p.prom.Start.Unix())}, "end": {fmt.Sprint(p.prom.End.Unix())}}
	status, env, _ = do(t, request(t, "POST", p.url+"/api/v1/query_exemplars", "team-a", q.Encode()))
	if status != 200 || env.Status != "success" {
		t.Errorf("query_exemplars: %d %+v", status, env)
	}
	status, env, _ = do(t, request(t, "GET", p.url+"/api/v1/metadata", "team-a", ""))
	if status != 200 || env.Status != "success" {
		t.Errorf("metadata: %d %+v", status, env)
	}
}

// TestTenantsFollowTheDirectory changes the manifests under a running proxy.
func TestTenantsFollowTheDirectory(t *testing.T) {
	dir := t.TempDir()
	for _, f := range []string{"team-a.yaml", "team-b.yaml"} {
		copyFile(t, filepath.Join(tenantsDir, f), filepath.Join(dir, f))
	}
	p := startProxy(t, dir, "")
	query := func(tenant string) (int, envelope) {
		status, env, _ := do(t, request(t, "GET", p.url+"/api/v1/query?query=count(up)", tenant, ""))
		return status, env
	}
	eventually := func(what string, ok func() bool) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); !ok(); time.Sleep(50 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%s: not within 10s", what)
			}
		}
	}
	if s, _ := query("team-c"); s != 403 {
		t.Fatalf("team-c before its manifest: %d, want 403", s)
	}
	writeFile(t, filepath.Join(dir, "team-c.yaml"), `apiVersion: observability.ethos.io/v1alpha1
kind: MetricAccess
metadata: {name: up, namespace: team-c}
spec: {metricIsolation: true, metrics: [up]}
`)
	eventually("team-c appears", func() bool { s, _ := query("team-c"); return s == 200 })

	// A broken file keeps its last good version; other tenants are unaffected.
	writeFile(t, filepath.Join(dir, "team-a.yaml"), "apiVersion: observability.ethos.io/v1alpha1\nkind: MetricAccess\nspec: [broken\n")
	time.Sleep(500 * time.Millisecond) // several reload intervals
	if s, env := query("team-a"); s != 200 || !strings.Contains(string(env.Data), `"4"`) {
		t.Errorf("team-a after its file broke: %d %s, want its last good policy (4 targets)", s, env.Data)
	}
	if s, _ := query("team-c"); s != 200 {
		t.Errorf("team-c after team-a's file broke: %d", s)
	}

	if err := os.Remove(filepath.Join(dir, "team-b.yaml")); err != nil {
		t.Fatal(err)
	}
	eventually("team-b disappears", func() bool { s, _ := query("team-b"); return s == 403 })

	// A narrowed policy applies to the very query asked before, which the
	// rewrite cache holds under the old policy.
	writeFile(t, filepath.Join(dir, "team-a.yaml"), `apiVersion: observability.ethos.io/v1alpha1
kind: MetricAccess
metadata: {name: web, namespace: team-a}
spec: {metricIsolation: true, metrics: [up], labelSelectors: {job: web}}
`)
	eventually("team-a's narrowed policy", func() bool {
		s, env := query("team-a")
		return s == 200 && strings.Contains(string(env.Data), `"2"`)
	})
}

// TestBasicAuthIdentity takes the tenant from the authenticated user, so a
// client cannot choose it with a header.
func TestBasicAuthIdentity(t *testing.T) {
	hash, err := bcrypt.GenerateFromPassword([]byte("s3cret"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	port := freePort(t)
	p := startProxy(t, tenantsDir, fmt.Sprintf(`
http://127.0.0.1:%d {
	basic_auth {
		team-a %s
	}
	prom_tenant {
		tenant {http.auth.user.id}
	}
	reverse_proxy {prometheus}
}
`, port, hash))
	base := fmt.Sprintf("http://127.0.0.1:%d/api/v1/query?query=count+by+(namespace)(up)", port)

	req := request(t, "GET", base, "team-b", "") // the header must not count
	req.SetBasicAuth("team-a", "s3cret")
	status, env, _ := do(t, req)
	if status != 200 || !strings.Contains(string(env.Data), `"namespace":"team-a"`) || strings.Contains(string(env.Data), "team-b") {
		t.Errorf("authenticated team-a: %d %s", status, env.Data)
	}
	req = request(t, "GET", base, "", "")
	req.SetBasicAuth("team-a", "wrong")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("wrong password: %d, want 401", resp.StatusCode)
	}
	_ = p
}

// getAs sends a GET as tenant (none if empty) and returns the status and
// body, whatever they are.
func getAs(t *testing.T, target, tenant string) (int, string) {
	t.Helper()
	resp, err := http.DefaultClient.Do(request(t, http.MethodGet, target, tenant, ""))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}
