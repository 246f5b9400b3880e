package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prom-tenant/caddy-prom-tenant/internal/testenv"
)

// TestThanosDashboardHitRate: ten viewers of one dashboard, with one policy
// (viewers-1 and viewers-2 of e2e/testdata/same-policy), open it at slightly
// different times and refresh it once, through prom_tenant → Thanos Query
// Frontend (results cache) → Query. Their clients write the same request
// differently, as clients do: Grafana's unix seconds and step=30, RFC 3339
// with step=30s, unix seconds with a fraction and step=30.0, and the panels'
// PromQL with other whitespace, `by` after the aggregation, [300s] for [5m].
//
// What users rely on, asserted: a request equal to an earlier one (same
// panel, same step-aligned range) is answered from the cache, whole (Query
// sees no request for it), with the earlier answer, whichever of the two
// viewers asks and however its client spells it. The hit rate is logged for
// docs/BENCHMARKS.md, with that of the same dashboard sent straight to the
// frontend (the enforced selectors spelled by each client): the same,
// because Query Frontend reads times itself and, splitting by interval,
// reprints the query before keying its cache; prom_tenant's canonical form
// (canonical.go) is what a cache keyed by the request's bytes needs.
func TestThanosDashboardHitRate(t *testing.T) {
	prom3 := testenv.Prometheus3Binary(t)
	th := testenv.StartThanos(t, testenv.ThanosOptions{PrometheusBinary: prom3})
	p := startProxyToUpstream(t, th.Frontend.Addr, "directory "+samePolicyDir, "")

	views := dashboardViews(th.End.Add(-12 * time.Minute))

	t.Run("through prom_tenant", func(t *testing.T) {
		st := runDashboard(t, th, views, func(v dashboardView, panel int) (string, string) {
			return p.url, viewerPanels("sum", "")[v.style][panel]
		})
		t.Logf("through prom_tenant: %s", st)
		for _, r := range st.repeats {
			if r.misses != 0 || r.queryRequests != 0 {
				t.Errorf("%s repeats an earlier request, yet the cache missed %v keys and Query got %v requests", r.name, r.misses, r.queryRequests)
			}
			if !r.sameAnswer {
				t.Errorf("%s repeats an earlier request but got another answer", r.name)
			}
		}
	})

	// The same dashboard (other aggregations, so the cache is cold for it)
	// sent to the frontend directly, each client with its spelling of the
	// enforced query: measured, for comparison.
	t.Run("straight to the frontend", func(t *testing.T) {
		st := runDashboard(t, th, views, func(v dashboardView, panel int) (string, string) {
			return th.Frontend.URL, viewerPanels("max", `namespace="team-a"`)[v.style][panel]
		})
		t.Logf("straight to the frontend: %s", st)
	})
}

// dashboardView is one load of the dashboard by a viewer.
type dashboardView struct {
	viewer int
	at     time.Time // the browser's "now"
	style  int       // how the viewer's client writes the request
}

// dashboardViews are ten viewers opening the dashboard (the last 30 minutes,
// step 30s) 9 s apart and refreshing it a minute later, in time order.
func dashboardViews(base time.Time) []dashboardView {
	var vs []dashboardView
	for i := range 10 {
		open := base.Add(time.Duration(i) * 9 * time.Second)
		vs = append(vs, dashboardView{viewer: i, at: open, style: i % 3}, dashboardView{viewer: i, at: open.Add(time.Minute), style: i % 3})
	}
	slices.SortStableFunc(vs, func(a, b dashboardView) int { return a.at.Compare(b.at) })
	return vs
}

// viewerPanels are the dashboard's three panels as each client style writes
// them; agg is the aggregation, sel a selector every metric is given.
func viewerPanels(agg, sel string) [3][3]string {
	m := "http_requests_total"
	if sel != "" {
		m += "{" + sel + "}"
	}
	m5xx := `http_requests_total{` + strings.TrimPrefix(sel+`,code=~"5.."`, ",") + `}`
	return [3][3]string{
		{
			fmt.Sprintf(`%s by (code) (rate(%s[5m]))`, agg, m),
			fmt.Sprintf(`%s by (pod) (rate(%s[5m]))`, agg, m5xx),
			fmt.Sprintf(`%s by (job) (increase(%s[10m]))`, agg, m),
		},
		{
			fmt.Sprintf("%s by(code)(\n  rate(%s[5m])\n)", agg, m),
			fmt.Sprintf("%s by(pod)(\n  rate(%s[5m])\n)", agg, m5xx),
			fmt.Sprintf("%s by(job)(\n  increase(%s[10m])\n)", agg, m),
		},
		{
			fmt.Sprintf(`%s(rate(%s[300s])) by (code)`, agg, m),
			fmt.Sprintf(`%s(rate(%s[300s])) by (pod)`, agg, m5xx),
			fmt.Sprintf(`%s(increase(%s[600s])) by (job)`, agg, m),
		},
	}
}

// dashboardStats is what one run of the views measured.
type dashboardStats struct {
	requests, fullHits int
	hits, misses       float64 // the results cache's keys found and not found
	queryRequests      float64 // range queries that reached Query
	repeats            []repeat
}

// repeat is a request equal (once canonical) to an earlier one.
type repeat struct {
	name                  string
	misses, queryRequests float64
	sameAnswer            bool
}

func (s dashboardStats) String() string {
	return fmt.Sprintf("%d requests (%d repeat an earlier one), %d answered whole from the cache; cache keys %v hit, %v missed (hit rate %.0f%%); %v range queries reached Query",
		s.requests, len(s.repeats), s.fullHits, s.hits, s.misses, 100*s.hits/(s.hits+s.misses), s.queryRequests)
}

// runDashboard sends each view's three panels, one request at a time, to
// the URL target gives, and measures each request's effect on the caches.
func runDashboard(t *testing.T, th *testenv.Thanos, views []dashboardView, target func(dashboardView, int) (string, string)) dashboardStats {
	t.Helper()
	var st dashboardStats
	seen := map[string]any{} // canonical request → its answer's data
	tenants := []string{"viewers-1", "viewers-2"}
	for _, v := range views {
		start, end := grafanaAlign(v.at.Add(-30*time.Minute), v.at, 30*time.Second)
		for panel := range 3 {
			base, query := target(v, panel)
			form := clientForm(v.style, query, start, end)
			h0, m0 := frontendCache(t, th)
			q0 := queryRangeRequests(t, th)
			data := getData(t, base+"/api/v1/query_range?"+form.Encode(), tenants[v.viewer%2])
			h1, m1 := frontendCache(t, th)
			q1 := queryRangeRequests(t, th)

			st.requests++
			st.hits += h1 - h0
			st.misses += m1 - m0
			st.queryRequests += q1 - q0
			if q1 == q0 && m1 == m0 {
				st.fullHits++
			}
			key := fmt.Sprintf("panel %d %d-%d", panel, start.Unix(), end.Unix())
			if earlier, ok := seen[key]; ok {
				st.repeats = append(st.repeats, repeat{
					name:          fmt.Sprintf("viewer %d (style %d) %s", v.viewer, v.style, key),
					misses:        m1 - m0,
					queryRequests: q1 - q0,
					sameAnswer:    reflect.DeepEqual(earlier, data),
				})
			} else {
				seen[key] = data
			}
		}
	}
	if st.queryRequests == 0 {
		t.Fatalf("no range query reached Query (is its http_requests_total{handler=\"query_range\"} gone?): %s", st)
	}
	return st
}

// grafanaAlign is Grafana's alignRange: the range widened to whole steps.
func grafanaAlign(from, to time.Time, step time.Duration) (time.Time, time.Time) {
	s := int64(step / time.Second)
	return time.Unix(from.Unix()/s*s, 0), time.Unix((to.Unix()+s-1)/s*s, 0)
}

// clientForm writes a range query as client style 0 (Grafana: unix seconds,
// step in seconds), 1 (RFC 3339, a duration) or 2 (unix seconds with a
// fraction, step with a fraction) does.
func clientForm(style int, query string, start, end time.Time) url.Values {
	switch style {
	case 1:
		return url.Values{"query": {query}, "start": {start.UTC().Format(time.RFC3339)}, "end": {end.UTC().Format(time.RFC3339)}, "step": {"30s"}}
	case 2:
		return url.Values{"query": {query}, "start": {strconv.FormatInt(start.Unix(), 10) + ".000"}, "end": {strconv.FormatInt(end.Unix(), 10) + ".000"}, "step": {"30.0"}}
	}
	return url.Values{"query": {query}, "start": {strconv.FormatInt(start.Unix(), 10)}, "end": {strconv.FormatInt(end.Unix(), 10)}, "step": {"30"}}
}

// getData sends a GET as tenant and returns the answer's data, failing t
// unless it succeeded.
func getData(t *testing.T, u, tenant string) any {
	t.Helper()
	status, b := getAs(t, u, tenant)
	var env struct {
		Status string
		Data   any
	}
	if err := json.Unmarshal([]byte(b), &env); err != nil || status != http.StatusOK || env.Status != "success" {
		t.Fatalf("%s: %d %s", u, status, truncate(b, 500))
	}
	if r, _ := env.Data.(map[string]any)["result"].([]any); len(r) == 0 {
		t.Fatalf("%s: no series: %s", u, truncate(b, 500))
	}
	return env.Data
}

// queryRangeRequests is how many range queries Thanos Query has answered.
func queryRangeRequests(t *testing.T, th *testenv.Thanos) float64 {
	t.Helper()
	m, err := th.Query.Metrics(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile(`(?m)^http_requests_total\{([^}]*)\} (\S+)$`)
	sum, found := 0.0, false
	for _, s := range re.FindAllStringSubmatch(m, -1) {
		if strings.Contains(s[1], `handler="query_range"`) {
			v, _ := strconv.ParseFloat(s[2], 64)
			sum, found = sum+v, true
		}
	}
	if !found {
		return 0 // none yet: the counter appears with the first
	}
	return sum
}
