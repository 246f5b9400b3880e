package promtenant

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
)

const dashboardFile = "examples/grafana/prom-tenant-dashboard.json"

// dashboardMetrics are the proxy's own metrics the dashboard may use, each
// registered by a metrics.go of the repository (checked below). A
// histogram's series are listed with their suffixes.
var dashboardMetrics = []string{
	"prometheus_proxy_requests_total",
	"prometheus_proxy_request_duration_seconds_bucket",
	"prometheus_proxy_request_duration_seconds_sum",
	"prometheus_proxy_request_duration_seconds_count",
	"prometheus_proxy_backend_requests_total",
	"prometheus_proxy_targets_discovered",
	"prometheus_proxy_tenants_active",
	"prometheus_proxy_metricaccess_rejected",
	"prometheus_proxy_remote_write_samples_sent_total",
	"prometheus_proxy_remote_write_samples_failed_total",
	"prometheus_proxy_remote_write_samples_dropped_total",
	"prometheus_proxy_remote_write_pending_samples",
	"prometheus_proxy_remote_write_last_success_timestamp_seconds",
}

type dashboardJSON struct {
	UID           string          `json:"uid"`
	Title         string          `json:"title"`
	SchemaVersion int             `json:"schemaVersion"`
	Panels        []dashboardItem `json:"panels"`
	Templating    struct {
		List []struct {
			Name       string          `json:"name"`
			Type       string          `json:"type"`
			Query      json.RawMessage `json:"query"`
			Datasource *datasourceRef  `json:"datasource"`
		} `json:"list"`
	} `json:"templating"`
}

type datasourceRef struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

type dashboardItem struct {
	ID         int            `json:"id"`
	Type       string         `json:"type"`
	Title      string         `json:"title"`
	Datasource *datasourceRef `json:"datasource"`
	GridPos    struct{ H, W, X, Y int }
	Targets    []struct {
		RefID      string         `json:"refId"`
		Expr       string         `json:"expr"`
		Datasource *datasourceRef `json:"datasource"`
	} `json:"targets"`
}

// grafanaVariable is a $name or ${name} reference in an expression.
var grafanaVariable = regexp.MustCompile(`\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?`)

// substituteVariables replaces Grafana's variables the way Grafana would
// before the query reaches Prometheus: interval variables by a duration,
// dashboard variables (which must be defined) by a value.
func substituteVariables(t *testing.T, expr string, defined []string) string {
	t.Helper()
	return grafanaVariable.ReplaceAllStringFunc(expr, func(ref string) string {
		name := grafanaVariable.FindStringSubmatch(ref)[1]
		switch name {
		case "__rate_interval", "__interval", "__range":
			return "1m"
		case "__interval_ms", "__range_ms":
			return "60000"
		case "__range_s":
			return "60"
		}
		if !slices.Contains(defined, name) {
			t.Errorf("%q uses $%s, which the dashboard does not define", expr, name)
		}
		return ".*"
	})
}

// metricNames parses a PromQL expression and returns the metric name of
// every selector in it; a selector without one is an error.
func metricNames(t *testing.T, expr string) []string {
	t.Helper()
	e, err := parser.NewParser(parser.Options{}).ParseExpr(expr)
	if err != nil {
		t.Errorf("%q does not parse: %v", expr, err)
		return nil
	}
	var names []string
	parser.Inspect(e, func(n parser.Node, _ []parser.Node) error {
		if vs, ok := n.(*parser.VectorSelector); ok {
			names = append(names, selectorName(t, expr, vs.LabelMatchers))
		}
		return nil
	})
	if len(names) == 0 {
		t.Errorf("%q selects no metric", expr)
	}
	return names
}

func selectorName(t *testing.T, expr string, ms []*labels.Matcher) string {
	t.Helper()
	for _, m := range ms {
		if m.Name == labels.MetricName && m.Type == labels.MatchEqual {
			return m.Value
		}
	}
	t.Errorf("%q has a selector without a metric name", expr)
	return ""
}

var labelValuesQuery = regexp.MustCompile(`^label_values\((.+),\s*([A-Za-z_][A-Za-z0-9_]*)\)$`)

// TestGrafanaDashboard checks examples/grafana/prom-tenant-dashboard.json: it
// is a dashboard of timeseries panels over a datasource variable of type
// prometheus, every PromQL expression in it parses with Prometheus's parser
// once Grafana's variables are substituted, and it uses only the proxy's own
// metrics, each of them at least once.
func TestGrafanaDashboard(t *testing.T) {
	raw, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	var d dashboardJSON
	if err := json.Unmarshal(raw, &d); err != nil {
		t.Fatalf("%s is not valid JSON: %v", dashboardFile, err)
	}
	if d.UID == "" || d.Title == "" || d.SchemaVersion != 39 {
		t.Errorf("uid %q, title %q, schemaVersion %d: want both set and schema 39", d.UID, d.Title, d.SchemaVersion)
	}

	var defined []string
	dsVariable := ""
	var exprs []string
	for _, v := range d.Templating.List {
		defined = append(defined, v.Name)
		switch v.Type {
		case "datasource":
			var q string
			if err := json.Unmarshal(v.Query, &q); err != nil || q != "prometheus" {
				t.Errorf("datasource variable %s: query %s, want \"prometheus\"", v.Name, v.Query)
			}
			dsVariable = v.Name
		case "query":
			var q struct{ Query string }
			if err := json.Unmarshal(v.Query, &q); err != nil {
				t.Errorf("variable %s: query %s: %v", v.Name, v.Query, err)
			}
			m := labelValuesQuery.FindStringSubmatch(q.Query)
			if m == nil {
				t.Errorf("variable %s: %q is not label_values(<selector>, <label>)", v.Name, q.Query)
				continue
			}
			exprs = append(exprs, m[1])
		}
	}
	if dsVariable == "" {
		t.Fatal("no datasource variable of type prometheus")
	}
	wantDS := datasourceRef{Type: "prometheus", UID: "${" + dsVariable + "}"}
	for _, v := range d.Templating.List {
		if v.Type == "query" && (v.Datasource == nil || *v.Datasource != wantDS) {
			t.Errorf("variable %s: datasource %+v, want %+v", v.Name, v.Datasource, wantDS)
		}
	}

	ids := map[int]bool{}
	panels := 0
	for _, p := range d.Panels {
		if ids[p.ID] {
			t.Errorf("panel id %d used twice", p.ID)
		}
		ids[p.ID] = true
		if p.GridPos.W <= 0 || p.GridPos.X+p.GridPos.W > 24 {
			t.Errorf("panel %q: gridPos %+v does not fit the 24-column grid", p.Title, p.GridPos)
		}
		if p.Type == "row" {
			continue
		}
		panels++
		if p.Type != "timeseries" {
			t.Errorf("panel %q: type %q, want timeseries", p.Title, p.Type)
		}
		if p.Datasource == nil || *p.Datasource != wantDS {
			t.Errorf("panel %q: datasource %+v, want %+v", p.Title, p.Datasource, wantDS)
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		refIDs := map[string]bool{}
		for _, q := range p.Targets {
			if q.RefID == "" || refIDs[q.RefID] {
				t.Errorf("panel %q: refId %q empty or repeated", p.Title, q.RefID)
			}
			refIDs[q.RefID] = true
			if q.Datasource != nil && *q.Datasource != wantDS {
				t.Errorf("panel %q query %s: datasource %+v, want %+v", p.Title, q.RefID, q.Datasource, wantDS)
			}
			exprs = append(exprs, q.Expr)
		}
	}
	if panels == 0 {
		t.Fatal("the dashboard has no panels")
	}

	used := map[string]bool{}
	for _, e := range exprs {
		for _, name := range metricNames(t, substituteVariables(t, e, defined)) {
			if name != "" && !slices.Contains(dashboardMetrics, name) {
				t.Errorf("%q uses %s, which is not one of the proxy's metrics", e, name)
			}
			used[name] = true
		}
	}
	for _, name := range dashboardMetrics {
		family := strings.TrimSuffix(strings.TrimSuffix(name, "_sum"), "_count")
		if !used[name] && (family == name || !used[family+"_bucket"]) {
			t.Errorf("no panel shows %s", name)
		}
	}
}

// TestDashboardMetricsExist ties the dashboard's metrics to the names the
// packages' metrics.go files register (as collector options or descriptors).
func TestDashboardMetricsExist(t *testing.T) {
	files, err := filepath.Glob("*/metrics.go")
	if err != nil {
		t.Fatal(err)
	}
	files = append(files, "metrics.go")
	var src strings.Builder
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		src.Write(b)
	}
	for _, name := range dashboardMetrics {
		family := name
		for _, suffix := range []string{"_bucket", "_sum", "_count"} {
			if strings.HasPrefix(name, "prometheus_proxy_request_duration_seconds") {
				family = strings.TrimSuffix(family, suffix)
			}
		}
		registered := regexp.MustCompile(`(Name:\s+|NewDesc\()"` + regexp.QuoteMeta(family) + `"`)
		if !registered.MatchString(src.String()) {
			t.Errorf("%s is not registered by any of %v", family, files)
		}
	}
}
