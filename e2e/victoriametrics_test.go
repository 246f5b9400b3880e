package e2e

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	v1 "github.com/prometheus/client_golang/api/prometheus/v1"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"

	"github.com/prom-tenant/caddy-prom-tenant/internal/testenv"
	"github.com/prom-tenant/caddy-prom-tenant/tenancy"
)

// TestVictoriaMetrics runs prom_tenant (`backend victoriametrics`) in front
// of a VictoriaMetrics holding all the example data. The isolation property
// on this engine is that a tenant through the proxy gets exactly what a
// VictoriaMetrics holding only the tenant's series answers to the tenant's
// own query: every answer of the oracle corpus (union-compiled queries
// included), every endpoint, is compared with such a VictoriaMetrics. Then
// the same answers are compared with a tenant-only Prometheus: where they
// differ, MetricsQL differs from PromQL, and each such difference is the
// engine's own (a tenant-only VictoriaMetrics answers it too), listed in
// vmEngineDifferences; the list must be exactly what differs.
func TestVictoriaMetrics(t *testing.T) {
	prom3 := testenv.Prometheus3Binary(t)
	vm := testenv.StartVictoriaMetrics(t, testenv.VictoriaMetricsOptions{})
	p := startVMProxy(t, vm.Addr, "")
	reg := loadPolicies(t, unionTenantsDir)
	pu := guarded(t, p.url, nil) // no answer holds __prom_tenant or another tenant's namespace

	differs := map[string][]string{} // what → tenants whose Prometheus answered otherwise
	for _, tenant := range []string{"team-a", "team-b", "team-c"} {
		t.Run(tenant, func(t *testing.T) {
			vmOracle := startVMOracle(t, vm, reg, tenant)
			promOracle, promURL := startOracleOver(t, vm.Start, vm.End, reg, tenant, prom3)

			got := runVMCorpus(t, newAPI(t, pu, tenant), pu, tenant, vm.Start, vm.End, vmUnionQueries)
			want := runVMCorpus(t, newAPI(t, vmOracle.URL, ""), vmOracle.URL, "", vm.Start, vm.End, vmUnionQueries)
			// VictoriaMetrics finds series, label names and values per day:
			// a window after the data still finds them (Prometheus does
			// not), and the tenant must still see only its own.
			later := v1.Range{Start: vm.End.Add(10 * time.Minute), End: vm.End.Add(20 * time.Minute)}
			maps.Copy(got, runVMMatchers(t, newAPI(t, pu, tenant), later, "later window "))
			maps.Copy(want, runVMMatchers(t, newAPI(t, vmOracle.URL, ""), later, "later window "))
			for _, what := range slices.Sorted(maps.Keys(want)) {
				if g, w := got[what], want[what]; !g.equal(w) {
					t.Errorf("%s:\nproxy:                    %s\ntenant-only VictoriaMetrics: %s", what, g, w)
				}
			}
			checkVMRangeUnions(t, pu, vmOracle.URL, tenant, vm.End)
			if tenant == "team-b" { // a union tenant
				checkVMBackendParams(t, vm, vmOracle, tenant)
			}

			engine := runVMCorpus(t, promOracle, promURL, "", vm.Start, vm.End, nil)
			for what, w := range engine {
				if !got[what].equal(w) {
					differs[what] = append(differs[what], tenant)
					if why, ok := vmEngineDifferences[what]; ok {
						t.Logf("%s: MetricsQL (%s):\nproxy:      %.300s\nPrometheus: %.300s", what, why, got[what], w)
					} else {
						t.Errorf("%s: VictoriaMetrics answers otherwise than Prometheus, and vmEngineDifferences does not say why:\nproxy:      %s\nPrometheus: %s", what, got[what], w)
					}
				}
			}
		})
	}
	failed := t.Failed() // then some answers were not compared
	for what, why := range vmEngineDifferences {
		if len(differs[what]) == 0 && !failed {
			t.Errorf("vmEngineDifferences lists %q (%s), but every tenant's answer equals Prometheus's: remove it", what, why)
		}
	}
}

// vmEngineDifferences are the corpus requests that VictoriaMetrics 1.79
// answers otherwise than Prometheus 3, through the proxy and as a
// tenant-only VictoriaMetrics alike (the test checks both): MetricsQL's own
// semantics, not the proxy's rewriting. The README's "VictoriaMetrics: what
// differs" says the same to users.
var vmEngineDifferences = map[string]string{
	// Both engines refuse, in their own words ("vector cannot contain
	// metrics with the same labelset" / "duplicate output timeseries").
	`query timestamp({namespace="team-b"})`:       "error text",
	`query_range timestamp({namespace="team-b"})`: "error text",
	// Prometheus refuses the name-dropped duplicates inside sum's argument;
	// VictoriaMetrics checks only a query's output, and sums them.
	`query sum by (namespace, job) (rate({__name__=~".+"}[5m]))`:       "duplicates only refused in the output",
	`query_range sum by (namespace, job) (rate({__name__=~".+"}[5m]))`: "duplicates only refused in the output",
	// MetricsQL keeps the metric name through max_over_time (of a
	// subquery); PromQL drops it, and then refuses team-c's colliding series.
	`query max_over_time(up[10m:1m])`:                         "metric name kept",
	`query_range max_over_time(up[10m:1m])`:                   "metric name kept",
	`query max_over_time({namespace="team-c"}[10m:1m])`:       "metric name kept, so no duplicates",
	`query_range max_over_time({namespace="team-c"}[10m:1m])`: "metric name kept, so no duplicates",
	// scalar() of nothing is NaN; VictoriaMetrics drops NaN samples from
	// its answers.
	`query up * 0 + scalar(db_password_len)`:       "NaN samples dropped",
	`query_range up * 0 + scalar(db_password_len)`: "NaN samples dropped",
	// A constant expression is a vector of one series, not a scalar.
	`query 1 + 1`: "scalar answered as a vector",
	// /api/v1/labels names __name__ even when match[] selects nothing.
	`labels ["{namespace=\"team-a\"}"]`: "__name__ listed for no series",
	// Prometheus's /federate gives every series without an instance label
	// an empty one (instance=""); VictoriaMetrics' does not.
	`federate ["{__name__=~\".+\"}"]`:                                                `instance=""`,
	`federate ["{namespace=\"team-a\"}"]`:                                            `instance=""`,
	`federate ["{job=\"api\"}" "db_password_len"]`:                                   `instance=""`,
	`federate ["http_requests_total{code=\"200\"}" "process_resident_memory_bytes"]`: `instance=""`,
	// /api/v1/status/buildinfo: VictoriaMetrics' is {} (no version).
	`buildinfo`: "VictoriaMetrics has no build information there",
	// Exemplars: VictoriaMetrics 1.79 stores none and answers [].
	// Metadata: VictoriaMetrics keeps none; the proxy answers {} as it
	// does (Prometheus answers from its targets' metadata; the example
	// data is backfilled, so it has none either).
}

// vmUnionQueries are more queries around the constructs a union is written
// with (label_replace, or), for the comparison with a tenant-only
// VictoriaMetrics only: operators and functions applied to a union, and
// the user's own or/and/unless/label_replace over one. team-b's and
// team-c's {job="api"} and {namespace=...} are unions.
var vmUnionQueries = []string{
	`{job="api"} * 2`,
	`{job="api"} > 1000`,
	`up or {job="api"}`,
	`{job="api"} or up`,
	`{namespace="team-b"} and on(instance) up`,
	`{namespace="team-c"} unless {job="web"}`,
	`sum without (instance, pod) ({job="api"})`,
	`count_over_time({namespace="team-b"}[5m])`,
	`increase({job="api"}[10m])`,
	`rate({job="api"}[5m] offset 5m)`,
	`quantile_over_time(0.5, {job="api"}[10m])`,
	`sum_over_time({job="api"}[5m:30s])`,
	`label_join({job="api"}, "x", "-", "job", "namespace")`,
	`label_replace({job="api"}, "__prom_tenant_part__", "x", "", "")`,
	`label_replace({namespace="team-c"}, "__name__", "same", "", "")`,
	`sort({job="api"})`,
	`group by (__name__) ({namespace=~"team-.*"})`,
	`changes({namespace="team-c"}[10m])`,
	`absent(up{job="api"}) or absent({job="api"})`,
	`vector(1) and on() {job="api"}`,
	`count(count by (__name__, job) ({job=~".+"}))`,
}

// startVMProxy runs bin/caddy with prom_tenant, `backend victoriametrics`
// and options, in front of upstream, with the union tenants.
func startVMProxy(t *testing.T, upstream, options string) *proxy {
	t.Helper()
	return startProxyOptions(t, upstream, "directory "+unionTenantsDir, "backend victoriametrics\n\t\t"+options, "")
}

// startVMOracle starts a VictoriaMetrics holding only the series tenant's
// policy allows, over vm's window.
func startVMOracle(t *testing.T, vm *testenv.VictoriaMetrics, reg *tenancy.Registry, tenant string) *testenv.VictoriaMetrics {
	t.Helper()
	tn, ok := reg.Lookup(tenant)
	if !ok {
		t.Fatalf("tenant %s has no policy", tenant)
	}
	return testenv.StartVictoriaMetrics(t, testenv.VictoriaMetricsOptions{
		Start: vm.Start, End: vm.End,
		Keep: func(series map[string]string) bool { return tn.Policy.Matches(labels.FromMap(series)) },
	})
}

// vmAnswer is one answer of the corpus: a query's value, another
// endpoint's answer rendered, or the error.
type vmAnswer struct {
	value model.Value
	text  string
	err   string
}

func (a vmAnswer) String() string {
	switch {
	case a.err != "":
		return "error " + a.err
	case a.value != nil:
		return render(a.value)
	}
	return a.text
}

// equal compares answers, sample values up to float rounding: sums and
// rates add the same numbers in another order when the series are stored
// in another order (VictoriaMetrics orders them by its internal ids).
func (a vmAnswer) equal(b vmAnswer) bool {
	if a.err != "" || b.err != "" {
		return a.err == b.err
	}
	if a.value == nil || b.value == nil {
		return a.value == nil && b.value == nil && a.text == b.text
	}
	sa, sb := samples(a.value), samples(b.value)
	if a.value.Type() != b.value.Type() || len(sa) != len(sb) {
		return false
	}
	for i := range sa {
		if sa[i].key != sb[i].key || !nearlyEqual(sa[i].v, sb[i].v) {
			return false
		}
	}
	return true
}

// sample is one value of an answer, keyed by its series and time.
type sample struct {
	key string
	v   float64
}

// samples lists a value's samples in a canonical order.
func samples(v model.Value) []sample {
	var out []sample
	switch v := v.(type) {
	case model.Vector:
		for _, s := range v {
			out = append(out, sample{s.Metric.String() + "@" + s.Timestamp.String(), float64(s.Value)})
		}
	case model.Matrix:
		for _, s := range v {
			for _, p := range s.Values {
				out = append(out, sample{s.Metric.String() + "@" + p.Timestamp.String(), float64(p.Value)})
			}
		}
	case *model.Scalar:
		out = append(out, sample{"@" + v.Timestamp.String(), float64(v.Value)})
	default:
		out = append(out, sample{v.String(), 0})
	}
	slices.SortFunc(out, func(a, b sample) int { return strings.Compare(a.key, b.key) })
	return out
}

// nearlyEqual is equality up to a relative 1e-9 (NaN equals NaN).
func nearlyEqual(a, b float64) bool {
	if math.IsNaN(a) || math.IsNaN(b) {
		return math.IsNaN(a) && math.IsNaN(b)
	}
	return a == b || math.Abs(a-b) <= 1e-9*math.Max(math.Abs(a), math.Abs(b))
}

// vmDuplicate is the series (name and labels) VictoriaMetrics names when a
// query's output has two series with the same labels: the first collision
// in its series order, which differs between a shared and a tenant-only
// VictoriaMetrics. The test compares that there is such an error.
var vmDuplicate = regexp.MustCompile(`duplicate output timeseries: [^{ ]*\{[^}]*\}`)

func vmError(err error) string {
	if err == nil {
		return ""
	}
	return vmDuplicate.ReplaceAllString(err.Error(), "duplicate output timeseries: {…}")
}

// runVMCorpus asks api (at base, as tenant) the oracle corpus over data
// in [start, end] and returns each answer by what was asked.
func runVMCorpus(t *testing.T, api v1.API, base, tenant string, start, end time.Time, more []string) map[string]vmAnswer {
	t.Helper()
	ctx := t.Context()
	at := end.Add(-time.Minute)
	rng := v1.Range{Start: end.Add(-30 * time.Minute), End: end, Step: time.Minute}
	out := map[string]vmAnswer{}
	for _, q := range slices.Concat(queries, []string{`{job="api"}[1m]`}, more) {
		v, _, _, err := api.Query(ctx, q, at)
		out["query "+q] = vmAnswer{value: v, err: vmError(err)}
		if strings.HasSuffix(q, "]") {
			continue // a range vector is for instant queries only
		}
		v, _, _, err = api.QueryRange(ctx, q, rng)
		out["query_range "+q] = vmAnswer{value: v, err: vmError(err)}
	}
	maps.Copy(out, runVMMatchers(t, api, v1.Range{Start: start, End: end}, ""))
	for _, m := range matchSets {
		out[fmt.Sprintf("federate %q", m)] = vmAnswer{text: federateSorted(t, base, tenant, m)}
	}
	for _, q := range []string{`http_requests_total`, `{job="api"}`} {
		ex, err := api.QueryExemplars(ctx, q, start, end)
		out["exemplars "+q] = vmAnswer{text: fmt.Sprint(ex), err: vmError(err)}
	}
	meta, err := api.Metadata(ctx, "", "")
	out["metadata"] = vmAnswer{text: fmt.Sprint(meta), err: vmError(err)}
	bi, err := api.Buildinfo(ctx)
	out["buildinfo"] = vmAnswer{text: fmt.Sprintf("%+v", bi), err: vmError(err)}
	return out
}

// runVMMatchers asks api for series, label names and label values of the
// corpus's match[] sets in rng, each answer keyed by prefix and what.
func runVMMatchers(t *testing.T, api v1.API, rng v1.Range, prefix string) map[string]vmAnswer {
	t.Helper()
	ctx := t.Context()
	out := map[string]vmAnswer{}
	for _, m := range matchSets {
		sets, _, _, err := api.Series(ctx, m, rng.Start, rng.End)
		out[prefix+fmt.Sprintf("series %q", m)] = vmAnswer{text: renderSets(sets), err: vmError(err)}
		names, _, _, err := api.LabelNames(ctx, m, rng.Start, rng.End)
		out[prefix+fmt.Sprintf("labels %q", m)] = vmAnswer{text: fmt.Sprint(names), err: vmError(err)}
	}
	for _, m := range append(matchSets, nil) {
		for _, name := range []string{"__name__", "namespace", "job", "pod"} {
			vals, _, _, err := api.LabelValues(ctx, name, m, rng.Start, rng.End)
			out[prefix+fmt.Sprintf("label %s values %q", name, m)] = vmAnswer{text: fmt.Sprint(vals), err: vmError(err)}
		}
	}
	names, _, _, err := api.LabelNames(ctx, nil, rng.Start, rng.End)
	out[prefix+"labels without match[]"] = vmAnswer{text: fmt.Sprint(names), err: vmError(err)}
	return out
}

// checkVMRangeUnions: a range selector whose policy needs a union is
// refused (PromQL has no union of range vectors) on this backend too; any
// other is answered as the tenant-only VictoriaMetrics answers it.
func checkVMRangeUnions(t *testing.T, proxyURL, oracleURL, tenant string, end time.Time) {
	t.Helper()
	at := end.Add(-time.Minute)
	for q, unions := range rangeUnions {
		got, _, _, gerr := newAPI(t, proxyURL, tenant).Query(t.Context(), q, at)
		var apiErr *v1.Error
		if slices.Contains(unions, tenant) {
			if !errors.As(gerr, &apiErr) || apiErr.Type != v1.ErrBadData || !strings.Contains(apiErr.Msg, "PromQL has no union of range vectors") {
				t.Errorf("query %s: want the refusal of a range selector over a union, got %v (answer %s)", q, gerr, render(got))
			}
			continue
		}
		want, _, _, werr := newAPI(t, oracleURL, "").Query(t.Context(), q, at)
		if g, w := (vmAnswer{value: got, err: vmError(gerr)}), (vmAnswer{value: want, err: vmError(werr)}); !g.equal(w) {
			t.Errorf("query %s:\nproxy:                    %s\ntenant-only VictoriaMetrics: %s", q, g, w)
		}
	}
}

// federateSorted is federate's answer with each sample's labels sorted:
// VictoriaMetrics writes them in their stored order, Prometheus sorted.
func federateSorted(t *testing.T, base, tenant string, match []string) string {
	t.Helper()
	return federateLines(t, base, tenant, match, func(name string, mf *dto.MetricFamily, m *dto.Metric) string {
		ls := model.LabelSet{model.MetricNameLabel: model.LabelValue(name)}
		for _, l := range m.Label {
			ls[model.LabelName(l.GetName())] = model.LabelValue(l.GetValue())
		}
		v := m.GetUntyped().GetValue() + m.GetGauge().GetValue() + m.GetCounter().GetValue()
		return fmt.Sprintf("%s %s %s %d", ls, mf.GetType(), strconv.FormatFloat(v, 'g', -1, 64), m.GetTimestampMs())
	})
}

// checkVMBackendParams: with backend_params victoriametrics, nocache=1 and
// round_digits=2 reach VictoriaMetrics and take effect (values rounded to
// two digits), and the corpus with them equals what a tenant-only
// VictoriaMetrics answers to the tenant's queries with them.
func checkVMBackendParams(t *testing.T, vm, oracle *testenv.VictoriaMetrics, tenant string) {
	t.Helper()
	p := startVMProxy(t, vm.Addr, "backend_params victoriametrics")
	params := url.Values{"nocache": {"1"}, "round_digits": {"2"}}
	pu := guarded(t, p.url, params)
	ou := guarded(t, oracle.URL, params)
	got := runVMCorpus(t, newAPI(t, pu, tenant), pu, tenant, vm.Start, vm.End, vmUnionQueries)
	want := runVMCorpus(t, newAPI(t, ou, ""), ou, "", vm.Start, vm.End, vmUnionQueries)
	for _, what := range slices.Sorted(maps.Keys(want)) {
		if g, w := got[what], want[what]; !g.equal(w) {
			t.Errorf("round_digits=2&nocache=1, %s:\nproxy:                    %s\ntenant-only VictoriaMetrics: %s", what, g, w)
		}
	}

	// The rounding shows: every value has at most two decimals, and
	// some would have more without it.
	const q = `rate(http_requests_total[5m])`
	at := vm.End.Add(-time.Minute)
	rounded, _, _, err := newAPI(t, pu, tenant).Query(t.Context(), q, at)
	if err != nil {
		t.Fatal(err)
	}
	plain, _, _, err := newAPI(t, guarded(t, p.url, nil), tenant).Query(t.Context(), q, at)
	if err != nil {
		t.Fatal(err)
	}
	twoDigits := func(v float64) bool { return math.Abs(v*100-math.Round(v*100)) < 1e-6 }
	more := false
	for _, s := range plain.(model.Vector) {
		more = more || !twoDigits(float64(s.Value))
	}
	if !more || len(rounded.(model.Vector)) == 0 {
		t.Errorf("the test needs values with more than two decimals: %v", plain)
	}
	for _, s := range rounded.(model.Vector) {
		if !twoDigits(float64(s.Value)) {
			t.Errorf("round_digits=2 did not take effect: %v", s)
		}
	}
}

// TestVictoriaMetricsLimitErrors: a VictoriaMetrics with tight search
// limits answers errors that quote what it ran (the filters of series and
// /federate, the request URI):
// through the proxy they keep the reason but never the policy's matchers.
func TestVictoriaMetricsLimitErrors(t *testing.T) {
	vm := testenv.StartVictoriaMetrics(t, testenv.VictoriaMetricsOptions{
		// Not -search.maxUniqueTimeseries: it fails the readiness query too
		// (a query's tagFilters text is TestVictoriaMetricsQueryTagFilters').
		Flags: []string{"-search.maxSeries=1", "-search.maxFederateSeries=1"},
	})
	p := startVMProxy(t, vm.Addr, "")
	pu := guarded(t, p.url, nil)
	end := strconv.FormatInt(vm.End.Unix(), 10)
	for _, path := range []string{
		"/api/v1/series?match[]=up&end=" + end,
		"/federate?match[]=up",
	} {
		status, body := getAs(t, pu+path, "team-a")
		var env struct{ Status, Error string }
		if err := json.Unmarshal([]byte(body), &env); err != nil || env.Status != "error" || status < 400 {
			t.Errorf("GET %s: %d %s, want an error in the envelope", path, status, truncate(body, 400))
			continue
		}
		t.Logf("GET %s: %d %s", path, status, env.Error)
		if strings.Contains(env.Error, "namespace") || strings.Contains(env.Error, "requestURI") {
			t.Errorf("GET %s: the error quotes what the tenant did not write: %s", path, env.Error)
		}
		if !strings.Contains(env.Error, "exceeds 1") {
			t.Errorf("GET %s: VictoriaMetrics' reason is lost: %s", path, env.Error)
		}
	}
}
