package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"

	"github.com/prom-tenant/caddy-prom-tenant/internal/testenv"
)

// samePolicyDir holds viewers-1 and viewers-2, two tenants with one policy.
var samePolicyDir = filepath.Join(testenv.RepoRoot(), "e2e", "testdata", "same-policy")

// TestThanosChain runs prom_tenant in front of Thanos Query Frontend (results
// cache) → Thanos Query (deduplicating an HA pair) → sidecars → an HA pair of
// Prometheus servers and a shard. Each tenant sees exactly what a Prometheus
// holding only its series, once, answers: deduplication hides the pair, the
// shard contributes team-c's namespace. Then the results cache is shown to be
// tenant-safe: it is keyed by the upstream request, which carries the policy.
func TestThanosChain(t *testing.T) {
	prom3 := testenv.Prometheus3Binary(t)
	// Prometheus 3.x servers, and a 3.x oracle: Thanos v0.42's engine is
	// Prometheus 3's (left-open range selectors).
	th := testenv.StartThanos(t, testenv.ThanosOptions{PrometheusBinary: prom3})

	dir := t.TempDir()
	for _, src := range []string{unionTenantsDir, samePolicyDir} {
		files, _ := filepath.Glob(filepath.Join(src, "*.yaml"))
		for _, f := range files {
			copyFile(t, f, filepath.Join(dir, filepath.Base(f)))
		}
	}
	// The proxy as examples/thanos configures it, and one with the
	// defaults (no backend parameters let through).
	p := startThanosProxy(t, th.Frontend.Addr, dir, thanosOptions(t))
	plain := startProxyToUpstream(t, th.Frontend.Addr, fmt.Sprintf("directory %s", dir), "")
	reg := loadPolicies(t, dir)

	oracles := map[string]v1.API{}
	for _, tenant := range []string{"team-a", "team-b", "team-c"} {
		oracles[tenant], _ = startOracleOver(t, th.Start, th.End, reg, tenant, prom3)
	}
	for _, tenant := range []string{"team-a", "team-b", "team-c"} {
		t.Run(tenant, func(t *testing.T) {
			checkTenantSeesOracle(t, guarded(t, p.url, nil), tenant, oracles[tenant], th.Start, th.End, thanosQuirks)
			// The replica label has no values, as in the oracle, which
			// has no such label (Thanos's own answer lists a, b, shard-0).
			for _, m := range append(matchSets, nil) {
				wv, _, _, werr := oracles[tenant].LabelValues(t.Context(), testenv.ThanosReplicaLabel, m, th.Start, th.End)
				gv, _, _, gerr := newAPI(t, p.url, tenant).LabelValues(t.Context(), testenv.ThanosReplicaLabel, m, th.Start, th.End)
				compare(t, tenant, fmt.Sprintf("label %s values %q", testenv.ThanosReplicaLabel, m), "", fmt.Sprint(wv), werr, fmt.Sprint(gv), gerr)
			}
		})
	}

	t.Run("engine=thanos", func(t *testing.T) {
		// backend_params thanos lets engine through: the rewritten queries,
		// unions among them, must be exact on Thanos's own engine too.
		withEngine := guarded(t, p.url, url.Values{"engine": {"thanos"}})
		for _, tenant := range []string{"team-a", "team-b", "team-c"} {
			t.Run(tenant, func(t *testing.T) {
				checkTenantSeesOracle(t, withEngine, tenant, oracles[tenant], th.Start, th.End, thanosQuirks)
			})
		}
	})

	t.Run("grafana custom query parameters", func(t *testing.T) {
		// A Grafana Prometheus data source for Thanos with custom query
		// parameters appends them to each request it makes.
		at := strconv.FormatInt(th.End.Add(-time.Minute).Unix(), 10)
		get := func(base, path, params string) (int, string) {
			return getAs(t, base+path+"&"+params, "team-a")
		}
		const grafana = "dedup=false&partial_response=true&max_source_resolution=auto"
		requests := []string{
			"/api/v1/query?query=http_requests_total&time=" + at,
			"/api/v1/query_range?query=http_requests_total&start=" + strconv.FormatInt(th.End.Add(-10*time.Minute).Unix(), 10) + "&end=" + at + "&step=60",
			"/api/v1/series?match[]=http_requests_total&start=" + strconv.FormatInt(th.Start.Unix(), 10) + "&end=" + at,
			"/api/v1/labels?match[]=http_requests_total&start=" + strconv.FormatInt(th.Start.Unix(), 10),
			"/api/v1/label/__name__/values?start=" + strconv.FormatInt(th.Start.Unix(), 10),
		}
		for _, path := range requests {
			// Without backend_params: refused, naming the option.
			status, body := get(plain.url, path, grafana)
			if status != http.StatusBadRequest || !strings.Contains(body, "the prom_tenant option backend_params lets it through") {
				t.Errorf("without backend_params, GET %s: %d %s", path, status, truncate(body, 300))
			}
			// With backend_params thanos: answered.
			status, body = get(p.url, path, grafana)
			if status != http.StatusOK || !strings.Contains(body, `"status":"success"`) {
				t.Errorf("with backend_params thanos, GET %s: %d %s", path, status, truncate(body, 300))
			}
		}

		// dedup=false reaches Thanos: the HA pair's two copies of each of
		// team-a's series, told apart by replica, and still only team-a's.
		deduped, _, _, err := newAPI(t, p.url, "team-a").Query(t.Context(), "http_requests_total", th.End.Add(-time.Minute))
		if err != nil {
			t.Fatal(err)
		}
		status, body := get(p.url, requests[0], grafana)
		var answer struct {
			Data struct {
				Result []struct{ Metric map[string]string }
			}
		}
		if err := json.Unmarshal([]byte(body), &answer); status != http.StatusOK || err != nil {
			t.Fatalf("%d %s (%v)", status, truncate(body, 300), err)
		}
		replicas := map[string]int{}
		for _, s := range answer.Data.Result {
			if s.Metric["namespace"] != "team-a" {
				t.Errorf("team-a got %v", s.Metric)
			}
			replicas[s.Metric[testenv.ThanosReplicaLabel]]++
		}
		n := len(deduped.(model.Vector))
		if n == 0 || replicas["a"] != n || replicas["b"] != n || len(replicas) != 2 {
			t.Errorf("dedup=false: series by replica %v, want a and b with the %d deduplicated series each", replicas, n)
		}
		for _, s := range deduped.(model.Vector) {
			if _, ok := s.Metric[testenv.ThanosReplicaLabel]; ok {
				t.Errorf("deduplicated answer has a replica label: %v", s.Metric)
			}
		}

		// The README: with dedup=false the label APIs answer as Thanos's
		// query API does, replica label included (the proxy takes nothing
		// out), still only team-a's.
		start := strconv.FormatInt(th.Start.Unix(), 10)
		status, body = get(p.url, "/api/v1/labels?start="+start, "dedup=false")
		if status != http.StatusOK || !strings.Contains(body, `"`+testenv.ThanosReplicaLabel+`"`) {
			t.Errorf("dedup=false: /api/v1/labels %d %s, want the replica label %q", status, body, testenv.ThanosReplicaLabel)
		}
		status, body = get(p.url, "/api/v1/label/"+testenv.ThanosReplicaLabel+"/values?start="+start, "dedup=false")
		if want := `{"status":"success","data":["a","b"]}`; status != http.StatusOK || body != want {
			t.Errorf("dedup=false: label %s values %d %s, want %s", testenv.ThanosReplicaLabel, status, body, want)
		}

		// replicaLabels[] reaches Thanos: it deduplicates by job instead,
		// so the answer has no job, and the replica label stays.
		status, body = get(p.url, requests[0], "replicaLabels[]=job")
		answer.Data.Result = nil
		if err := json.Unmarshal([]byte(body), &answer); status != http.StatusOK || err != nil || len(answer.Data.Result) == 0 {
			t.Fatalf("replicaLabels[]=job: %d %s (%v)", status, truncate(body, 300), err)
		}
		for _, s := range answer.Data.Result {
			if _, ok := s.Metric["job"]; ok || s.Metric["namespace"] != "team-a" || s.Metric[testenv.ThanosReplicaLabel] == "" {
				t.Errorf("replicaLabels[]=job: %v, want team-a's series without job, with %s", s.Metric, testenv.ThanosReplicaLabel)
			}
		}
	})

	t.Run("series cache and replicaLabels[]", func(t *testing.T) {
		// Query Frontend's series cache key holds the matchers only: a
		// replicaLabels[] sent with series (Grafana sends its custom
		// parameters everywhere) must not decide what a later request
		// without it reads. The proxy does not forward it on series.
		m := []string{`http_requests_total{code="500"}`} // not asked above: the cache starts cold
		api := newAPI(t, p.url, "team-a")
		with := guarded(t, p.url, url.Values{"replicaLabels[]": {"job"}})
		if _, _, _, err := newAPI(t, with, "team-a").Series(t.Context(), m, th.Start, th.End); err != nil {
			t.Fatal(err)
		}
		got, _, _, err := api.Series(t.Context(), m, th.Start, th.End)
		want, _, _, werr := oracles["team-a"].Series(t.Context(), m, th.Start, th.End)
		compare(t, "team-a", fmt.Sprintf("series %q after one with replicaLabels[]=job", m), "", renderSets(want), werr, renderSets(got), err)
		if len(want) == 0 {
			t.Fatalf("the oracle has no series %q", m)
		}
	})

	t.Run("partial_response=false on labels", func(t *testing.T) {
		// Thanos reads partial_response on series, labels and label values
		// and defaults to true: a data source asking for false must get it
		// there. true is dropped (Query Frontend's labels cache key leaves
		// it out). A recording hop between the proxy and the frontend shows
		// what reaches Thanos.
		var mu sync.Mutex
		var reached []url.Values
		frontend := &url.URL{Scheme: "http", Host: th.Frontend.Addr}
		rp := &httputil.ReverseProxy{Rewrite: func(r *httputil.ProxyRequest) { r.SetURL(frontend) }}
		hop := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			body, _ := io.ReadAll(r.Body)
			r.Body = io.NopCloser(bytes.NewReader(body))
			form, _ := url.ParseQuery(r.URL.RawQuery)
			if b, err := url.ParseQuery(string(body)); err == nil && r.Method == http.MethodPost {
				for k, vs := range b {
					form[k] = append(form[k], vs...)
				}
			}
			if r.URL.Path == "/api/v1/labels" {
				mu.Lock()
				reached = append(reached, form)
				mu.Unlock()
			}
			rp.ServeHTTP(w, r)
		}))
		t.Cleanup(hop.Close)
		hp := startThanosProxy(t, hop.Listener.Addr().String(), dir, thanosOptions(t))
		start := strconv.FormatInt(th.Start.Unix(), 10)
		for _, partial := range []string{"false", "true"} {
			mu.Lock()
			reached = nil
			mu.Unlock()
			status, body := getAs(t, hp.url+"/api/v1/labels?match[]=http_requests_total&start="+start+"&partial_response="+partial, "team-a")
			if status != http.StatusOK || !strings.Contains(body, `"status":"success"`) {
				t.Errorf("partial_response=%s: %d %s", partial, status, truncate(body, 300))
			}
			want := []string{partial}
			if partial == "true" {
				want = nil
			}
			mu.Lock()
			if len(reached) != 1 || !slices.Equal(reached[0]["partial_response"], want) {
				t.Errorf("partial_response=%s: Thanos got %v, want partial_response %q", partial, reached, want)
			}
			mu.Unlock()
		}
	})

	t.Run("cache", func(t *testing.T) {
		// A query text and range no test above asked: the cache starts cold.
		const q = `sum by (namespace, code) (rate(http_requests_total[5m]))`
		rng := v1.Range{Start: th.End.Add(-40 * time.Minute), End: th.End.Add(-5 * time.Minute), Step: 30 * time.Second}
		ask := func(tenant string) (answer string, hits, misses float64) {
			t.Helper()
			h0, m0 := frontendCache(t, th)
			v, _, _, err := newAPI(t, p.url, tenant).QueryRange(t.Context(), q, rng)
			if err != nil {
				t.Fatalf("%s: %v", tenant, err)
			}
			h1, m1 := frontendCache(t, th)
			return render(v), h1 - h0, m1 - m0
		}
		oracle := func(tenant string) string {
			v, _, _, err := oracles[tenant].QueryRange(t.Context(), q, rng)
			if err != nil {
				t.Fatal(err)
			}
			return render(v)
		}

		// viewers-1 warms the cache with team-a's counters.
		warm, hits, misses := ask("viewers-1")
		if want := oracle("team-a"); warm != want {
			t.Fatalf("viewers-1:\nproxy:  %s\noracle: %s", warm, want)
		}
		if hits != 0 || misses == 0 {
			t.Errorf("viewers-1 asked first: %v hits, %v misses; want a miss only", hits, misses)
		}

		// team-b asks the same text: its rewritten query differs, so the
		// cache misses and it gets its own counters.
		got, hits, misses := ask("team-b")
		if want := oracle("team-b"); got != want {
			t.Errorf("team-b after viewers-1 warmed the cache:\nproxy:  %s\noracle: %s", got, want)
		}
		if got == warm {
			t.Errorf("team-b got viewers-1's answer from the cache: %s", got)
		}
		if hits != 0 || misses == 0 {
			t.Errorf("team-b: %v hits, %v misses; want a miss only", hits, misses)
		}

		// viewers-2 has viewers-1's policy: the same upstream request, a hit.
		got, hits, misses = ask("viewers-2")
		if got != warm {
			t.Errorf("viewers-2:\ngot:        %s\nviewers-1: %s", got, warm)
		}
		if hits == 0 || misses != 0 {
			t.Errorf("viewers-2, with viewers-1's policy: %v hits, %v misses; want a hit only", hits, misses)
		}
	})

	t.Run("refused with backend thanos", func(t *testing.T) {
		// What Thanos Query cannot serve as Prometheus does is refused
		// before it is asked, naming why.
		for path, reason := range map[string]string{
			"/federate?match[]=up":                    "Thanos Query has no /federate; copy the tenant's series with prom_remote_write instead",
			"/api/v1/metadata":                        "Thanos Query has no /api/v1/targets/metadata",
			"/api/v1/metadata?metric=db_password_len": "Thanos Query has no /api/v1/targets/metadata",
		} {
			status, body := getAs(t, p.url+path, "team-a")
			var env struct{ Status, ErrorType, Error string }
			if err := json.Unmarshal([]byte(body), &env); err != nil || status != http.StatusNotFound ||
				env.ErrorType != "not_found" || !strings.Contains(env.Error, reason) {
				t.Errorf("GET %s: %d %s, want 404 not_found naming %q", path, status, body, reason)
			}
		}
	})

	t.Run("other endpoints", func(t *testing.T) {
		// What Thanos does with the endpoints Thanos Query may not serve as
		// Prometheus does, through either proxy. Whatever the status, a
		// tenant must never get another namespace's series.
		for _, base := range []string{plain.url, p.url} {
			for _, path := range []string{
				"/federate?match[]=up",
				"/api/v1/metadata",
				"/api/v1/metadata?metric=db_password_len",
				"/api/v1/query_exemplars?query=http_requests_total&start=" + strconv.FormatInt(th.Start.Unix(), 10) + "&end=" + strconv.FormatInt(th.End.Unix(), 10),
				"/api/v1/targets/metadata?match_target={job=\"api\"}",
			} {
				status, body := getAs(t, base+path, "team-a")
				t.Logf("team-a GET %s: %d %s", path, status, truncate(body, 400))
				var env struct{ Status string }
				if err := json.Unmarshal([]byte(body), &env); err != nil || (env.Status != "success") != (status >= 400) {
					t.Errorf("GET %s: %d is not in Prometheus's envelope: %s", path, status, body)
				}
				for _, other := range []string{"team-b", "team-c", "db_password_len"} {
					if status == http.StatusOK && strings.Contains(body, other) {
						t.Errorf("GET %s as team-a leaks %s: %s", path, other, body)
					}
				}
			}
		}
	})
}

// thanosOptions are prom_tenant's options for the chain, read from the
// block examples/thanos ships (its tenant line aside: here the tenant comes
// from the header), so that the shipped configuration is the tested one.
func thanosOptions(t *testing.T) string {
	t.Helper()
	const f = "examples/thanos/configmap.yaml"
	b, err := os.ReadFile(filepath.Join(testenv.RepoRoot(), f))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?s)\n\s*prom_tenant \{\n(.*?)\n\s*\}\n`).FindSubmatch(b)
	if m == nil {
		t.Fatalf("%s: no prom_tenant block", f)
	}
	var opts []string
	for l := range strings.SplitSeq(string(m[1]), "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") && !strings.HasPrefix(l, "tenant ") {
			opts = append(opts, l)
		}
	}
	// The chain's Query deduplicates by testenv.ThanosReplicaLabel.
	if !slices.Contains(opts, "backend thanos") || !slices.Contains(opts, "replica_labels "+testenv.ThanosReplicaLabel) {
		t.Fatalf("%s: prom_tenant's options %q: want backend thanos and replica_labels %s", f, opts, testenv.ThanosReplicaLabel)
	}
	return strings.Join(opts, "\n\t\t")
}

// thanosQuirks are what Thanos v0.42 answers differently from Prometheus
// through the proxy with thanosOptions: nothing. Query's /api/v1/labels and
// /api/v1/label/<name>/values keep the replica label that its query and
// series APIs deduplicate away (its label APIs take no replica labels); the
// proxy takes it out of the names and answers its values with none, as the
// oracle does. (Query Frontend's error envelopes, sent as text/plain, pass
// through the proxy as they are: the errors compare exactly.)
var thanosQuirks = quirks{}

// startThanosProxy starts bin/caddy with prom_tenant (options in its block)
// in front of upstream, tenants from the directory dir.
func startThanosProxy(t *testing.T, upstream, dir, options string) *proxy {
	t.Helper()
	return startProxyOptions(t, upstream, "directory "+dir, options, "")
}

// frontendCache reads the counters of the query frontend's range-query
// results cache (not its labels cache): keys found, and keys asked for but
// not found.
func frontendCache(t *testing.T, th *testenv.Thanos) (hits, misses float64) {
	t.Helper()
	m, err := th.Frontend.Metrics(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	hits = rangeCacheCounter(t, m, "cortex_cache_hits_total")
	return hits, rangeCacheCounter(t, m, "cortex_cache_fetched_keys_total") - hits
}

// rangeCacheCounter sums name's samples of the query_range tripperware in a
// text exposition; there must be one.
func rangeCacheCounter(t *testing.T, exposition, name string) float64 {
	t.Helper()
	re := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name) + `\{([^}]*)\} (\S+)$`)
	var sum float64
	found := false
	for _, m := range re.FindAllStringSubmatch(exposition, -1) {
		if !strings.Contains(m[1], `tripperware="query_range"`) {
			continue
		}
		v, err := strconv.ParseFloat(m[2], 64)
		if err != nil {
			t.Fatal(err)
		}
		sum, found = sum+v, true
	}
	if !found {
		t.Fatalf("no %s{tripperware=\"query_range\"} in the frontend's metrics:\n%s", name, exposition)
	}
	return sum
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
