package e2e

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	v1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
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
}

// refused are the corpus queries a tenant's policy cannot answer with one
// selector: the proxy must refuse exactly these, and answer all others
// exactly as the oracle does.
var refused = map[string][]string{
	"team-a": nil,
	"team-b": {`{__name__=~".+"}`, `count({__name__=~".+"})`, `{namespace="team-b"}`},
}

var matchSets = [][]string{
	{`{__name__=~".+"}`},
	{`up`},
	{`{namespace="team-a"}`},
	{`{job="api"}`, `db_password_len`},
	{`http_requests_total{code="200"}`, `process_resident_memory_bytes`},
}

func TestTenantSeesExactlyItsOracle(t *testing.T) {
	p := startProxy(t, tenantsDir, "")
	reg := loadPolicies(t, tenantsDir)
	for _, tenant := range []string{"team-a", "team-b"} {
		t.Run(tenant, func(t *testing.T) {
			oracle, oracleURL := startOracle(t, p.prom, reg, tenant)
			proxied := newAPI(t, p.url, tenant)
			ctx := t.Context()
			at := p.prom.End.Add(-time.Minute)
			rng := v1.Range{Start: p.prom.End.Add(-30 * time.Minute), End: p.prom.End, Step: time.Minute}

			for _, q := range queries {
				want, _, _, werr := oracle.Query(ctx, q, at)
				got, _, _, gerr := proxied.Query(ctx, q, at)
				compare(t, tenant, "query "+q, q, render(want), werr, render(got), gerr)

				wantR, _, _, werr := oracle.QueryRange(ctx, q, rng)
				gotR, _, _, gerr := proxied.QueryRange(ctx, q, rng)
				compare(t, tenant, "query_range "+q, q, render(wantR), werr, render(gotR), gerr)
			}
			for _, m := range matchSets {
				want, _, _, werr := oracle.Series(ctx, m, p.prom.Start, p.prom.End)
				got, _, _, gerr := proxied.Series(ctx, m, p.prom.Start, p.prom.End)
				compare(t, tenant, fmt.Sprintf("series %q", m), "", renderSets(want), werr, renderSets(got), gerr)

				wn, _, _, werr := oracle.LabelNames(ctx, m, p.prom.Start, p.prom.End)
				gn, _, _, gerr := proxied.LabelNames(ctx, m, p.prom.Start, p.prom.End)
				compare(t, tenant, fmt.Sprintf("labels %q", m), "", fmt.Sprint(wn), werr, fmt.Sprint(gn), gerr)

				compare(t, tenant, fmt.Sprintf("federate %q", m), "",
					federate(t, oracleURL, "", m), nil, federate(t, p.url, tenant, m), nil)
			}
			for _, m := range append(matchSets, nil) {
				for _, name := range []string{"__name__", "namespace", "job", "pod"} {
					wv, _, _, werr := oracle.LabelValues(ctx, name, m, p.prom.Start, p.prom.End)
					gv, _, _, gerr := proxied.LabelValues(ctx, name, m, p.prom.Start, p.prom.End)
					compare(t, tenant, fmt.Sprintf("label %s values %q", name, m), "", fmt.Sprint(wv), werr, fmt.Sprint(gv), gerr)
				}
			}
			wn, _, _, _ := oracle.LabelNames(ctx, nil, p.prom.Start, p.prom.End)
			gn, _, _, err := proxied.LabelNames(ctx, nil, p.prom.Start, p.prom.End)
			compare(t, tenant, "labels without match[]", "", fmt.Sprint(wn), nil, fmt.Sprint(gn), err)
		})
	}
}

// compare asserts the proxy answered what the oracle answered, or refused a
// query listed in refused with the irreducible-union error.
func compare(t *testing.T, tenant, what, query, want string, werr error, got string, gerr error) {
	t.Helper()
	if query != "" && slices.Contains(refused[tenant], query) {
		var apiErr *v1.Error
		if !errors.As(gerr, &apiErr) || apiErr.Type != v1.ErrBadData || !strings.Contains(apiErr.Msg, "cannot express their union") {
			t.Errorf("%s: want a refusal naming the union, got %v (answer %s)", what, gerr, got)
		}
		return
	}
	if werr != nil {
		t.Fatalf("%s: oracle failed: %v", what, werr)
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
	q := url.Values{"match[]": match}
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, base+"/federate?"+q.Encode(), nil)
	if tenant != "" {
		req.Header.Set("X-Tenant-Namespace", tenant)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Sprintf("status %d: %s", resp.StatusCode, body)
	}
	parser := expfmt.NewTextParser(model.LegacyValidation)
	families, err := parser.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("federate answer does not parse: %v\n%s", err, body)
	}
	var lines []string
	for name, mf := range families {
		for _, m := range mf.Metric {
			lines = append(lines, name+m.String())
		}
	}
	slices.Sort(lines)
	return strings.Join(lines, "\n")
}
