package e2e

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	v1 "github.com/prometheus/client_golang/api/prometheus/v1"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/prom-tenant/caddy-prom-tenant/internal/testenv"
)

// queries is the corpus each tenant runs through the proxy and against its
// oracle. It includes every leak of result filtering from ANCHORS.md.
var queries = []string{
	`up`,
	`count by (namespace) (up)`,
	`sum by (job) (rate(http_requests_total[5m]))`,
	`http_requests_total{code="500"}`,
	`{__name__=~"http_.*"}`,
	`{__name__=~".+"}`,
	`count({__name__=~".+"})`,
	`{namespace="team-b"}`,
	`histogram_quantile(0.9, sum by (le) (rate(http_request_duration_seconds_bucket[5m])))`,
	`absent(nonexistent_metric{job="x"})`,
	`absent(up{job="api"})`,
	`absent(db_password_len)`,
	`absent_over_time(db_password_len{job="db"}[5m])`,
	`db_password_len`,
	`up * 0 + scalar(db_password_len)`,
	`label_replace(db_password_len, "__name__", "up", "", "")`,
	`sum(up) and on() (db_password_len > 40)`,
	`label_replace(sum(db_password_len), "job", "api", "", "")`,
	`topk(3, process_resident_memory_bytes)`,
	`count_values("v", up)`,
	`max_over_time(up[10m:1m])`,
	`up offset 5m`,
	`timestamp(up)`,
	`vector(1)`,
	`1 + 1`,
	`node_cpu_seconds_total`,
	`sum(up{namespace="team-a"})`,
	`sum(up{namespace!="team-a"})`,
	`rate(http_requests_total{pod=~"api-.*"}[5m]) * on(namespace) group_left() max by (namespace) (kube_pod_info)`,
	`up == bool 1`,
	`sort_desc(sum by (namespace, job) (up))`,
	`sum without (instance) (process_resident_memory_bytes{job="api"})`,
	`http_request_duration_seconds_count / ignoring(code) http_request_duration_seconds_sum`,
	// Selectors that overlap several selectors of a union policy: answered
	// by writing the union into the query.
	`{job="api"}`,
	`count by (__name__) ({__name__=~".+"})`,
	`rate({__name__=~".+_total"}[5m])`,
	`sum by (namespace, job) (rate({__name__=~".+"}[5m]))`,
	`label_replace({__name__=~".+"}, "copy", "$1", "job", "(.*)")`,
	`{__name__=~".+"} @ end()`,
	`{namespace=~"team-.*"} offset 2m`,
	`max_over_time({namespace="team-c"}[10m:1m])`,
	`last_over_time({job=~"api|web"}[5m])`,
	`timestamp({namespace="team-b"})`,
	`absent({__name__=~"secret.*"})`,
	`absent({namespace="team-c",job="api"})`,
	`absent_over_time({job="api"}[5m])`,
	`count({job="api"}) by (namespace)`,
	`topk(2, sum by (__name__) ({__name__=~".+"}))`,
	`{job="api"} unless on(namespace) kube_pod_info`,
}

// rangeUnions are queries whose whole is a range selector (instant queries
// only), and the tenants whose policy needs a union of several selectors for
// it. PromQL has no union of range vectors, so the proxy refuses exactly
// those, with the refusal docs/TROUBLESHOOTING.md shows; for the others the
// selector reduces to one and is answered exactly.
var rangeUnions = map[string][]string{
	`{namespace="team-b"}[5m]`: {"team-b"},
	`{namespace="team-c"}[5m]`: {"team-c"},
	// team-b's two branches differ in the name only, and team-c's others lie
	// inside its {job="api"}: one selector each.
	`{job="api"}[1m]`: nil,
}

var matchSets = [][]string{
	{`{__name__=~".+"}`},
	{`up`},
	{`{namespace="team-a"}`},
	{`{job="api"}`, `db_password_len`},
	{`http_requests_total{code="200"}`, `process_resident_memory_bytes`},
}

// unionTenantsDir holds the README's tenants and team-c, whose policy is a
// union of three overlapping MetricAccess objects.
var unionTenantsDir = filepath.Join(testenv.RepoRoot(), "e2e", "testdata", "union-tenants")

func TestTenantSeesExactlyItsOracle(t *testing.T) {
	testTenantsSeeTheirOracles(t, testenv.SharedPrometheus(t), "")
}

// TestTenantSeesExactlyItsOracle3 is TestTenantSeesExactlyItsOracle with
// Prometheus 3.x upstreams and oracles: its engine differs (left-open range
// selectors, "." matching a newline), and the rewritten queries must be
// exact on it too.
func TestTenantSeesExactlyItsOracle3(t *testing.T) {
	bin := testenv.Prometheus3Binary(t)
	testTenantsSeeTheirOracles(t, testenv.StartPrometheusWith(t, testenv.PrometheusOptions{Binary: bin}), bin)
}

func testTenantsSeeTheirOracles(t *testing.T, prom *testenv.Prometheus, binary string) {
	p := startProxyTo(t, prom, unionTenantsDir, "")
	reg := loadPolicies(t, unionTenantsDir)
	for _, tenant := range []string{"team-a", "team-b", "team-c"} {
		t.Run(tenant, func(t *testing.T) {
			oracle, oracleURL := startOracleWith(t, p.prom, reg, tenant, binary)
			checkTenantSeesOracle(t, p.url, tenant, oracle, p.prom.Start, p.prom.End, quirks{})
			for _, m := range matchSets {
				compare(t, tenant, fmt.Sprintf("federate %q", m), "",
					federate(t, oracleURL, "", m), nil, federate(t, p.url, tenant, m), nil)
			}
		})
	}
}

// quirks are the known ways an upstream other than Prometheus answers a
// tenant differently through the proxy; the zero value expects Prometheus's
// answers exactly.
type quirks struct {
	// extraLabelNames are label names the upstream's /api/v1/labels adds to
	// any non-empty answer (Thanos Query: its replica labels).
	extraLabelNames model.LabelNames
}

func (q quirks) labelNames(oracle model.LabelNames) string {
	if len(oracle) == 0 {
		return fmt.Sprint(oracle)
	}
	names := append(slices.Clone(oracle), q.extraLabelNames...)
	slices.Sort(names)
	return fmt.Sprint(slices.Compact(names))
}

// checkTenantSeesOracle runs the corpus (queries, rangeUnions, matchSets)
// through the proxy at proxyURL as tenant and against its oracle, over data
// in [start, end]: instant and range queries, series, label names and values.
func checkTenantSeesOracle(t *testing.T, proxyURL, tenant string, oracle v1.API, start, end time.Time, quirk quirks) {
	t.Helper()
	proxied := newAPI(t, proxyURL, tenant)
	ctx := t.Context()
	at := end.Add(-time.Minute)
	rng := v1.Range{Start: end.Add(-30 * time.Minute), End: end, Step: time.Minute}

	for _, q := range queries {
		want, _, _, werr := oracle.Query(ctx, q, at)
		got, _, _, gerr := proxied.Query(ctx, q, at)
		compare(t, tenant, "query "+q, q, render(want), werr, render(got), gerr)

		wantR, _, _, werr := oracle.QueryRange(ctx, q, rng)
		gotR, _, _, gerr := proxied.QueryRange(ctx, q, rng)
		compare(t, tenant, "query_range "+q, q, render(wantR), werr, render(gotR), gerr)
	}
	for _, m := range matchSets {
		want, _, _, werr := oracle.Series(ctx, m, start, end)
		got, _, _, gerr := proxied.Series(ctx, m, start, end)
		compare(t, tenant, fmt.Sprintf("series %q", m), "", renderSets(want), werr, renderSets(got), gerr)

		wn, _, _, werr := oracle.LabelNames(ctx, m, start, end)
		gn, _, _, gerr := proxied.LabelNames(ctx, m, start, end)
		compare(t, tenant, fmt.Sprintf("labels %q", m), "", quirk.labelNames(wn), werr, fmt.Sprint(gn), gerr)
	}
	for _, m := range append(matchSets, nil) {
		for _, name := range []string{"__name__", "namespace", "job", "pod"} {
			wv, _, _, werr := oracle.LabelValues(ctx, name, m, start, end)
			gv, _, _, gerr := proxied.LabelValues(ctx, name, m, start, end)
			compare(t, tenant, fmt.Sprintf("label %s values %q", name, m), "", fmt.Sprint(wv), werr, fmt.Sprint(gv), gerr)
		}
	}
	wn, _, _, _ := oracle.LabelNames(ctx, nil, start, end)
	gn, _, _, err := proxied.LabelNames(ctx, nil, start, end)
	compare(t, tenant, "labels without match[]", "", quirk.labelNames(wn), nil, fmt.Sprint(gn), err)
	for q, unions := range rangeUnions {
		want, _, _, werr := oracle.Query(ctx, q, at)
		got, _, _, gerr := proxied.Query(ctx, q, at)
		var apiErr *v1.Error
		switch {
		case !slices.Contains(unions, tenant):
			compare(t, tenant, "query "+q, q, render(want), werr, render(got), gerr)
		case !errors.As(gerr, &apiErr) || apiErr.Type != v1.ErrBadData || !strings.Contains(apiErr.Msg, "PromQL has no union of range vectors"):
			t.Errorf("query %s: want the refusal of a range selector over a union, got %v (answer %s)", q, gerr, render(got))
		}
	}
}

// compare asserts the proxy answered what the oracle answered: the same
// answer, or the same error.
func compare(t *testing.T, tenant, what, query, want string, werr error, got string, gerr error) {
	t.Helper()
	if werr != nil && gerr != nil && werr.Error() == gerr.Error() {
		return // as the tenant-only Prometheus refuses it
	}
	if werr != nil {
		t.Errorf("%s: oracle failed: %v\nproxy: %s (error %v)", what, werr, got, gerr)
		return
	}
	if gerr != nil {
		t.Errorf("%s: proxy failed: %v", what, gerr)
		return
	}
	if got != want {
		t.Errorf("%s:\nproxy:  %s\noracle: %s", what, got, want)
	}
}

// render writes a query result canonically: series sorted by labels.
func render(v model.Value) string {
	var lines []string
	switch v := v.(type) {
	case nil:
		return "<nil>"
	case model.Vector:
		for _, s := range v {
			lines = append(lines, s.String())
		}
	case model.Matrix:
		for _, s := range v {
			lines = append(lines, s.String())
		}
	default:
		return v.String()
	}
	slices.Sort(lines)
	return fmt.Sprintf("%s[%s]", v.Type(), strings.Join(lines, "; "))
}

func renderSets(sets []model.LabelSet) string {
	lines := make([]string, len(sets))
	for i, s := range sets {
		lines[i] = s.String()
	}
	slices.Sort(lines)
	return strings.Join(lines, "; ")
}

// federate fetches /federate and renders its samples canonically.
func federate(t *testing.T, base, tenant string, match []string) string {
	t.Helper()
	return federateLines(t, base, tenant, match, func(name string, _ *dto.MetricFamily, m *dto.Metric) string {
		return name + m.String()
	})
}

// federateLines fetches /federate as tenant (none if empty) and returns one
// line per sample, as line writes it, sorted; or the status and body of an
// answer that is not 200.
func federateLines(t *testing.T, base, tenant string, match []string, line func(name string, mf *dto.MetricFamily, m *dto.Metric) string) string {
	t.Helper()
	status, body := getAs(t, base+"/federate?"+url.Values{"match[]": match}.Encode(), tenant)
	if status != http.StatusOK {
		return fmt.Sprintf("status %d: %s", status, body)
	}
	parser := expfmt.NewTextParser(model.LegacyValidation)
	families, err := parser.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("federate answer does not parse: %v\n%s", err, body)
	}
	var lines []string
	for name, mf := range families {
		for _, m := range mf.Metric {
			lines = append(lines, line(name, mf, m))
		}
	}
	slices.Sort(lines)
	return strings.Join(lines, "\n")
}
