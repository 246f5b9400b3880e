package rewrite

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/promql/promqltest"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/util/annotations"
)

// oracleData is multi-namespace data: series of team-a, team-b and team-c,
// series without a namespace, a secret, and series with an empty label.
const oracleData = `
load 1m
	http_requests_total{namespace="team-a",job="api",code="200"} 0+10x30
	http_requests_total{namespace="team-a",job="api",code="500"} 0+1x30
	http_requests_total{namespace="team-a",job="web",code="200"} 0+4x30
	http_requests_total{namespace="team-b",job="api",code="200"} 0+7x30
	http_requests_total{namespace="team-b",job="web",code="500"} 0+3x30
	http_requests_total{namespace="team-c",job="api",code="200"} 0+5x30
	http_request_duration_seconds_bucket{namespace="team-a",job="api",le="0.1"} 0+1x30
	http_request_duration_seconds_bucket{namespace="team-a",job="api",le="0.5"} 0+3x30
	http_request_duration_seconds_bucket{namespace="team-a",job="api",le="+Inf"} 0+4x30
	http_request_duration_seconds_bucket{namespace="team-b",job="api",le="0.1"} 0+2x30
	http_request_duration_seconds_bucket{namespace="team-b",job="api",le="+Inf"} 0+9x30
	up{namespace="team-a",job="api",instance="a1"} 1x30
	up{namespace="team-a",job="web",instance="a2"} 0x30
	up{namespace="team-b",job="api",instance="b1"} 1x30
	up{namespace="team-b",job="db",instance="b2"} 1x30
	up{namespace="team-c",job="api",instance="c1"} 1x30
	up{job="node",instance="n1"} 1x30
	process_resident_memory_bytes{namespace="team-a",job="api"} 100+1x30
	process_resident_memory_bytes{namespace="team-b",job="api"} 200+2x30
	process_resident_memory_bytes{namespace="team-b",job="db"} 300+3x30
	db_password_len{namespace="team-b",job="db"} 42x30
	node_cpu_seconds_total{instance="n1",mode="idle"} 0+60x30
	node_cpu_seconds_total{instance="n1",mode="user"} 0+5x30
	kube_pod_info{namespace="team-a",pod="p1"} 1x30
	kube_pod_info{namespace="team-b",pod="p2"} 1x30
	kube_pod_info{namespace="team-c",pod="p3"} 1x30
	native_latency_seconds{namespace="team-a",job="api"} {{schema:0 sum:5 count:4 buckets:[1 2 1]}}+{{schema:0 sum:2 count:1 buckets:[1]}}x30
	native_latency_seconds{namespace="team-b",job="api"} {{schema:0 sum:1 count:1 buckets:[1]}}x30
	flapping{namespace="team-a",job="api"} 1 2 3 stale _ _ 4 5 stale _ 6x10
	flapping{namespace="team-b",job="web"} 7 stale _ _ 8x20
	hostile{namespace="team-a",job="api",__prom_tenant_part__="1x"} 1+1x30
	hostile{namespace="team-a",job="api",__prom_tenant_part__="0"} 2+1x30
	hostile{namespace="team-a",job="api"} 3+1x30
	hostile{namespace="team-b",job="web",__prom_tenant_part__="00"} 4+1x30
`

// oraclePolicies cover names only, regexes, namespace isolation, job
// selectors, unions that mix them, and allow-all. single marks policies whose
// every query reduces to one selector: they must never refuse.
var oraclePolicies = []struct {
	name      string
	selectors []string
	single    bool
}{
	{"names", []string{`{__name__="http_requests_total"}`, `{__name__="up"}`}, true},
	{"regex-isolated", []string{`{__name__=~"http_.*",namespace="team-a"}`, `{__name__="up",namespace="team-a"}`}, true},
	{"namespace", []string{`{namespace="team-b"}`}, true},
	{"job", []string{`{job="api"}`}, true},
	{"negative", []string{`{namespace="team-a",job!="web"}`, `{namespace="team-a",job!~"w.*",__name__=~"up|kube_.*"}`}, true},
	{"union", []string{`{__name__="http_requests_total",namespace="team-b"}`, `{job="api",namespace="team-b"}`}, false},
	{"mixed", []string{`{__name__=~"process_.*"}`, `{namespace="team-a",job="api"}`, `{__name__="kube_pod_info"}`}, false},
	{"allow-all", []string{`{}`}, true},
	{"overlapping", []string{`{namespace="team-a"}`, `{job="api"}`}, false},
	{"names-differ", []string{`{__name__="http_requests_total",job="api"}`, `{__name__=~"process_.*|hostile",namespace="team-b"}`}, false},
	{"five", []string{`{namespace="team-a",job="api"}`, `{__name__="up"}`, `{job="web",code="500"}`,
		`{__name__=~"native_.*|flapping",namespace="team-b"}`, `{__name__="hostile",__prom_tenant_part__=~".+"}`}, false},
	{"twenty", twentyBranches(), false},
}

// twentyBranches is a policy of 20 branches over different labels, so that
// few merge.
func twentyBranches() []string {
	var out []string
	for _, ns := range []string{"team-a", "team-b", "team-c"} {
		for _, job := range []string{"api", "web"} {
			out = append(out, fmt.Sprintf(`{namespace=%q,job=%q,__name__=~"h.*"}`, ns, job))
		}
		out = append(out, fmt.Sprintf(`{namespace=%q,__name__=~"(up|kube_.*)"}`, ns))
	}
	return append(out, `{instance="n1"}`, `{mode="user"}`, `{code="500"}`, `{le="+Inf"}`, `{pod="p2"}`, `{instance="b2"}`,
		`{__name__="flapping"}`, `{__name__="native_latency_seconds",namespace="team-b"}`, `{__prom_tenant_part__="00"}`, `{job="db",__name__=~"db_.*"}`, `{instance=~"a.*"}`)
}

// oracleSelectors and oracleTemplates multiply into the corpus.
var oracleSelectors = []string{
	`up`, `http_requests_total`, `http_requests_total{code="500"}`, `{__name__=~"http_.*"}`, `{__name__=~".+"}`,
	`{namespace="team-a"}`, `{namespace!="team-a",job=~".+"}`, `{namespace=~"team-.*"}`, `{job="api"}`, `{job=~"api|web"}`,
	`{job!~"db",__name__=~".+"}`, `db_password_len`, `node_cpu_seconds_total`, `{__name__=~"process_.*|up"}`, `up{namespace=""}`,
	`{instance=~".+"}`, `kube_pod_info`, `{__name__=~".*_total"}`, `up{job="api",namespace="team-b"}`, `nonexistent`,
	`http_request_duration_seconds_bucket`, `{namespace="team-b",job="db"}`, `native_latency_seconds`, `flapping`, `hostile`,
	`{__prom_tenant_part__=~".+"}`,
}

var oracleTemplates = []string{
	`%s`, `rate(%s[5m])`, `sum(%s)`, `sum by (namespace, job) (%s)`, `count(%s)`, `absent(%s)`,
	`absent_over_time(%s[5m])`, `max_over_time(%s[10m:1m])`, `%s offset 5m`, `%s @ 600`,
	`label_replace(%s, "__name__", "renamed", "", "")`, `count_values("v", %s)`, `scalar(sum(%s))`,
	`topk(2, %s)`, `%s > 0`, `%s * on() group_left() count(up)`, `count(%s) by (__name__)`,
	`timestamp(%s)`, `-%s`, `sum(%s) and on() (db_password_len > 40)`,
}

// oracleExtra are hand-written queries: the leaks of result filtering, and
// shapes the templates do not make.
var oracleExtra = []string{
	`up * 0 + scalar(db_password_len)`,
	`label_replace(db_password_len, "__name__", "up", "", "")`,
	`label_replace(sum(db_password_len), "job", "api", "", "")`,
	`http_requests_total and on() (db_password_len > 40)`,
	`histogram_quantile(0.9, sum by (le) (rate(http_request_duration_seconds_bucket[5m])))`,
	`sum by (job) (rate(http_requests_total{code="500"}[5m])) / ignoring(code) group_left sum by (job) (rate(http_requests_total[5m]))`,
	`up or db_password_len`, `up unless on(namespace) kube_pod_info`, `vector(1)`, `time()`, `1 + 1`,
	`count({__name__=~".+"}) by (namespace)`, `max_over_time(rate(http_requests_total[2m])[10m:1m] offset 2m)`,
	`absent(nonexistent{job="x",namespace="team-a"})`, `absent(up{job="api",job!="x"})`, `absent(up{job=~"api"})`,
	`sort_desc(sum by (namespace) (process_resident_memory_bytes))`, `quantile(0.5, up)`,
	`up == bool 1`, `clamp_max(http_requests_total, 50)`, `changes(up[10m])`, `resets(http_requests_total[10m])`,
}

func oracleCorpus() []string {
	var qs []string
	for _, tmpl := range oracleTemplates {
		for _, sel := range oracleSelectors {
			qs = append(qs, fmt.Sprintf(tmpl, sel))
		}
	}
	return append(qs, oracleExtra...)
}

// oracle evaluates queries twice: rewritten over all data, and as written
// over only the series the policy allows.
type oracle struct {
	engine *promql.Engine
	all    storage.Queryable
}

func newOracle(t testing.TB) *oracle {
	return &oracle{
		engine: promqltest.NewTestEngineWithOpts(t, promql.EngineOpts{
			MaxSamples: 1e6, Timeout: 10 * time.Second, LookbackDelta: 5 * time.Minute,
			EnableAtModifier: true, EnableNegativeOffset: true,
			// As Prometheus's default: a subquery without a step uses the
			// global evaluation interval.
			NoStepSubqueryIntervalFn: func(int64) int64 { return time.Minute.Milliseconds() },
		}),
		all: promqltest.LoadedStorage(t, oracleData),
	}
}

var (
	oracleTime  = time.Unix(0, 0).Add(20 * time.Minute)
	oracleStart = time.Unix(0, 0).Add(8 * time.Minute)
	oracleEnd   = time.Unix(0, 0).Add(26 * time.Minute)
)

// documentedRefusal reports whether a refusal is one README and
// docs/TROUBLESHOOTING.md list: a range selector outside a function under a
// union (no PromQL form), or info().
func documentedRefusal(query string, err error) bool {
	expr, perr := parser.NewParser(parser.Options{EnableExperimentalFunctions: true}).ParseExpr(query)
	if perr != nil {
		return false
	}
	found := false
	parser.Inspect(expr, func(n parser.Node, path []parser.Node) error {
		switch n := n.(type) {
		case *parser.MatrixSelector:
			parent := parser.Node(nil)
			for i := len(path) - 1; i >= 0; i-- {
				if _, paren := path[i].(*parser.ParenExpr); !paren {
					parent = path[i]
					break
				}
			}
			if _, inCall := parent.(*parser.Call); !inCall && errors.Is(err, ErrIrreducibleUnion) {
				found = true
			}
		case *parser.Call:
			if n.Func.Name == "info" && errors.Is(err, ErrUnsupported) {
				found = true
			}
			// absent() over a selector whose labels the upstream reports
			// differently by the order its storage reads the matchers in.
			if (n.Func.Name == "absent" || n.Func.Name == "absent_over_time") && errors.Is(err, ErrUnsupported) &&
				strings.Contains(err.Error(), "depending on the order") {
				found = true
			}
		}
		return nil
	})
	return found
}

// breaksTies reports a query with an aggregation that picks among series
// with equal values by the order of its input.
func breaksTies(query string) bool {
	expr, err := parser.NewParser(parser.Options{EnableExperimentalFunctions: true}).ParseExpr(query)
	if err != nil {
		return false
	}
	found := false
	parser.Inspect(expr, func(n parser.Node, _ []parser.Node) error {
		if a, ok := n.(*parser.AggregateExpr); ok && (a.Op == parser.TOPK || a.Op == parser.BOTTOMK || a.Op == parser.LIMITK) {
			found = true
		}
		return nil
	})
	return found
}

// sampleValues renders a series as its samples, one a line, without labels.
func sampleValues(s fmt.Stringer) []string {
	out := s.String()
	if i := strings.Index(out, "=>"); i >= 0 {
		out = out[i+2:]
	}
	return strings.Fields(strings.ReplaceAll(out, " @", "@"))
}

func wholeSeries(s fmt.Stringer) []string { return []string{s.String()} }

// eval runs query as an instant and a range query and renders the answers.
func (o *oracle) eval(t testing.TB, q storage.Queryable, query string) string {
	t.Helper()
	return o.evalRender(t, q, query, wholeSeries)
}

// evalRender is eval with each series rendered by render.
func (o *oracle) evalRender(t testing.TB, q storage.Queryable, query string, render func(fmt.Stringer) []string) string {
	t.Helper()
	ctx := context.Background()
	iq, err := o.engine.NewInstantQuery(ctx, q, nil, query, oracleTime)
	if err != nil {
		return "error: " + err.Error()
	}
	defer iq.Close()
	rq, err := o.engine.NewRangeQuery(ctx, q, nil, query, oracleStart, oracleEnd, time.Minute)
	if err != nil {
		return "error: " + err.Error()
	}
	defer rq.Close()
	return renderResult(iq.Exec(ctx), render) + "\n" + renderResult(rq.Exec(ctx), render)
}

func renderResult(r *promql.Result, render func(fmt.Stringer) []string) string {
	if r.Err != nil {
		return "error"
	}
	var lines []string
	switch v := r.Value.(type) {
	case promql.Vector:
		for _, s := range v {
			lines = append(lines, render(s)...)
		}
	case promql.Matrix:
		for _, s := range v {
			lines = append(lines, render(s)...)
		}
	default:
		return r.Value.String()
	}
	slices.Sort(lines)
	return fmt.Sprintf("%s[%s]", r.Value.Type(), strings.Join(lines, "; "))
}

// check compares one query under one policy. It returns whether the rewriter
// refused it, and fails t if the answers differ or the refusal is untyped.
func (o *oracle) check(t testing.TB, e *Enforcer, p *Policy, query string) (refused bool) {
	t.Helper()
	rewritten, err := e.EnforceQuery(context.Background(), p, query)
	switch {
	case errors.Is(err, ErrIrreducibleUnion), errors.Is(err, ErrUnsupported):
		if !documentedRefusal(query, err) {
			t.Fatalf("policy %s, query %s: refused outside the documented cases: %v", p, query, err)
		}
		return true
	case errors.Is(err, ErrLimit), errors.Is(err, ErrUnionTooLarge):
		// A cap on the request's work (docs/TROUBLESHOOTING.md, "Over a
		// limit"): the corpus stays far below them, fuzzed input may not.
		if !strings.HasPrefix(t.Name(), "Fuzz") {
			t.Fatalf("policy %s, query %s: over a limit: %v", p, query, err)
		}
		return true
	case errors.Is(err, ErrParse):
		if _, perr := parser.NewParser(parser.Options{}).ParseExpr(query); perr == nil {
			t.Fatalf("policy %s, query %s: the rewriter cannot parse what Prometheus parses: %v", p, query, err)
		}
		return true
	case err != nil:
		t.Fatalf("policy %s, query %s: untyped error %v", p, query, err)
	}
	got := o.eval(t, o.all, rewritten)
	want := o.eval(t, filtered{o.all, p}, query)
	if got != want && breaksTies(query) {
		// Which of several series with equal values topk, bottomk and
		// limitk keep depends on the order of their input, which Prometheus
		// does not define (over an operator's result it varies from run to
		// run) and which differs under a union: compare the values kept.
		got = o.evalRender(t, o.all, rewritten, sampleValues)
		want = o.evalRender(t, filtered{o.all, p}, query, sampleValues)
	}
	if got != want {
		t.Errorf("policy %s\nquery     %s\nrewritten %s\n got  %s\n want %s", p, query, rewritten, got, want)
	}
	return false
}

func TestOracleQueries(t *testing.T) {
	o := newOracle(t)
	e := NewEnforcer(parser.Options{})
	corpus := oracleCorpus()
	if len(corpus) < 300 {
		t.Fatalf("corpus has %d queries, want at least 300", len(corpus))
	}
	for _, pc := range oraclePolicies {
		t.Run(pc.name, func(t *testing.T) {
			p := newTestPolicy(t, pc.selectors...)
			refused := 0
			for _, q := range corpus {
				if o.check(t, e, p, q) {
					refused++
					if pc.single {
						_, err := e.EnforceQuery(context.Background(), p, q)
						t.Errorf("policy %s refused %s: %v", p, q, err)
					}
				}
			}
			t.Logf("policy %s: %d queries answered exactly, %d refused", p, len(corpus)-refused, refused)
			if refused > len(corpus)/2 {
				t.Errorf("refused %d of %d queries: the oracle proves little", refused, len(corpus))
			}
		})
	}
}

// TestOracleMatchers checks match[] enforcement: the series the rewritten
// match[] select from all data are those the user's select from the allowed.
func TestOracleMatchers(t *testing.T) {
	o := newOracle(t)
	e := NewEnforcer(parser.Options{})
	matchSets := [][]string{nil}
	for _, s := range oracleSelectors {
		matchSets = append(matchSets, []string{s})
	}
	matchSets = append(matchSets, []string{`up`, `db_password_len`}, []string{`{job="api"}`, `{namespace="team-b"}`})
	for _, pc := range oraclePolicies {
		p := newTestPolicy(t, pc.selectors...)
		for _, match := range matchSets {
			rewritten, err := e.EnforceMatchers(context.Background(), p, match)
			if err != nil {
				t.Fatalf("policy %s, match[] %q: %v", p, match, err)
			}
			got := selectSeries(t, o.all, rewritten)
			userMatch := match
			if len(userMatch) == 0 {
				userMatch = []string{`{__name__=~".+"}`} // no match[]: everything the tenant may see
			}
			want := selectSeries(t, filtered{o.all, p}, userMatch)
			if got != want {
				t.Errorf("policy %s, match[] %q → %q\n got  %s\n want %s", p, match, rewritten, got, want)
			}
		}
	}
}

func selectSeries(t testing.TB, q storage.Queryable, match []string) string {
	t.Helper()
	querier, err := q.Querier(0, oracleEnd.UnixMilli())
	if err != nil {
		t.Fatal(err)
	}
	defer querier.Close()
	seen := map[string]bool{}
	for _, s := range match {
		ms, err := parser.NewParser(parser.Options{}).ParseMetricSelector(s)
		if err != nil {
			t.Fatalf("match[] %q: %v", s, err)
		}
		set := querier.Select(context.Background(), false, nil, ms...)
		for set.Next() {
			seen[set.At().Labels().String()] = true
		}
		if set.Err() != nil {
			t.Fatal(set.Err())
		}
	}
	out := make([]string, 0, len(seen))
	for s := range seen {
		out = append(out, s)
	}
	slices.Sort(out)
	return strings.Join(out, " ")
}

// filtered is a Queryable that holds only the series a policy allows: the
// definition of what a tenant may see.
type filtered struct {
	storage.Queryable
	policy *Policy
}

func (f filtered) Querier(mint, maxt int64) (storage.Querier, error) {
	q, err := f.Queryable.Querier(mint, maxt)
	if err != nil {
		return nil, err
	}
	return filteredQuerier{q, f.policy}, nil
}

type filteredQuerier struct {
	storage.Querier
	policy *Policy
}

func (f filteredQuerier) Select(ctx context.Context, sortSeries bool, hints *storage.SelectHints, ms ...*labels.Matcher) storage.SeriesSet {
	return &filteredSet{SeriesSet: f.Querier.Select(ctx, sortSeries, hints, ms...), policy: f.policy}
}

type filteredSet struct {
	storage.SeriesSet
	policy *Policy
}

func (s *filteredSet) Next() bool {
	for s.SeriesSet.Next() {
		if s.policy.Matches(s.At().Labels()) {
			return true
		}
	}
	return false
}

func (s *filteredSet) Warnings() annotations.Annotations { return s.SeriesSet.Warnings() }

// FuzzOracle runs the differential oracle on arbitrary queries: for every
// policy, the rewritten query over all data answers exactly what the query
// answers over the allowed series, or the rewriter refuses with a typed error.
func FuzzOracle(f *testing.F) {
	// TestOracleQueries runs the whole corpus; the fuzzer starts from the
	// hand-written queries and mutates.
	for _, q := range oracleExtra {
		f.Add(q)
	}
	o := newOracle(f)
	e := NewEnforcer(parser.Options{})
	var policies []*Policy
	for _, pc := range oraclePolicies {
		policies = append(policies, newTestPolicy(f, pc.selectors...))
	}
	f.Fuzz(func(t *testing.T, query string) {
		expr, err := parser.NewParser(parser.Options{}).ParseExpr(query)
		if err != nil || tooCostly(expr) {
			return
		}
		for _, p := range policies {
			o.check(t, e, p, query)
		}
	})
}

// tooCostly reports queries whose evaluation cost, not their rewriting, would
// dominate a fuzz run: subqueries whose steps multiply (nesting) past a bound,
// huge ranges, long inputs.
func tooCostly(expr parser.Expr) bool {
	steps, costly := 1, false
	parser.Inspect(expr, func(n parser.Node, _ []parser.Node) error {
		switch n := n.(type) {
		case *parser.SubqueryExpr:
			step := n.Step
			if step <= 0 {
				step = time.Minute
			}
			steps *= int(min(n.Range/step, 1000)) + 1
			costly = costly || n.RangeExpr != nil || n.StepExpr != nil
		case *parser.MatrixSelector:
			costly = costly || n.Range > 24*time.Hour || n.RangeExpr != nil
		}
		return nil
	})
	return costly || steps > 1000 || len(expr.String()) > 1000
}
