package promtenant

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/prometheus/prometheus/promql/parser"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/prom-tenant/caddy-prom-tenant/internal/doccheck"
	"github.com/prom-tenant/caddy-prom-tenant/rewrite"
	"github.com/prom-tenant/caddy-prom-tenant/tenancy"
)

// placeholder turns the variable part of a message (matched by re) into the
// <name> the documentation shows instead.
type placeholder struct {
	re   string
	with string
}

func withPlaceholders(msg string, ps []placeholder) string {
	for _, p := range ps {
		msg = doccheck.Generalize(msg, p.re, p.with)
	}
	return msg
}

// TestTroubleshootingRefusals triggers the handler's refusals and checks that
// docs/TROUBLESHOOTING.md shows each answer exactly (status line and JSON
// envelope, variable parts as <placeholders>): when a message changes, the
// documentation must change with it.
func TestTroubleshootingRefusals(t *testing.T) {
	doc := doccheck.Troubleshooting(t)
	h := newTestHandler(t)
	experimental := newTestHandler(t)
	experimental.enforcer = rewrite.NewEnforcer(parser.Options{EnableExperimentalFunctions: true})
	tinyUnions := newTestHandler(t)
	tinyUnions.enforcer = tinyUnions.enforcer.WithLimits(rewrite.Limits{MaxUnionSelectors: 2})
	down := &upstream{respond: func(http.ResponseWriter, *http.Request) error {
		return caddyhttp.Error(http.StatusBadGateway, errors.New("dial tcp 10.0.0.9:9090: connect: connection refused"))
	}}
	smallCap := newTestHandler(t)
	smallCap.MaxMetadataResponse = 1024
	bigAnswer := caddyhttp.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) error {
		_, err := w.Write([]byte(`{"status":"success","data":[` + strings.Repeat(" ", 4096)))
		return err
	})
	noTargetMetadata := &upstream{respond: func(w http.ResponseWriter, _ *http.Request) error {
		w.WriteHeader(http.StatusNotFound)
		_, err := w.Write([]byte(`{"status":"error","errorType":"not_found","error":"not found"}`))
		return err
	}}
	q := func(query string) string { return "/api/v1/query?query=" + url.QueryEscape(query) }
	small := newTestHandler(t)
	small.enforcer = small.enforcer.WithLimits(rewrite.Limits{MaxRewrittenSize: 16})
	manyMatch := "/api/v1/series?" + strings.Repeat("match[]=up&", 1001) + "match[]=up"
	gone, cancel := context.WithCancel(context.Background())
	cancel()
	canceled := get(manyMatch[:len("/api/v1/series?")+len("match[]=up&")*10]+"match[]=up", "team-b").WithContext(gone)
	overLimit := []placeholder{{`[0-9]+( bytes)? is over the limit of [0-9]+`, `<n>$1 is over the limit of <max>`}}
	jsonBody := post("/api/v1/query", "team-a", `{"query":"up"}`)
	jsonBody.Header.Set("Content-Type", "application/json")
	// What the body read returns when the server's read_body timeout expires.
	slowBody := post("/api/v1/query", "team-a", "")
	slowBody.Body = io.NopCloser(iotest.ErrReader(&net.OpError{Op: "read", Net: "tcp", Err: os.ErrDeadlineExceeded}))
	for _, tc := range []struct {
		name string
		h    *Handler
		next caddyhttp.Handler
		req  *http.Request
		vars []placeholder
	}{
		{name: "no tenant", req: get(q("up"), "")},
		{name: "unknown tenant", req: get(q("up"), "team-c"), vars: []placeholder{{`"team-c"`, `"<namespace>"`}}},
		{name: "more than one tenant", req: get(q("up"), "team-a,team-b"), vars: []placeholder{{`\("team-a,team-b"\)`, `("<value>")`}}},
		{name: "not a namespace name", req: get(q("up"), "Team_A"), vars: []placeholder{{`"Team_A" is not a namespace name: .*`, `"<value>" is not a namespace name: <reason>`}}},
		{name: "path not served", req: get("/api/v1/rules", "team-a"), vars: []placeholder{{`"/api/v1/rules"`, `"<path>"`}}},
		{name: "method not allowed", req: post("/federate", "team-a", "match[]=up"), vars: []placeholder{{`method POST is not allowed for /federate`, `method <method> is not allowed for <path>`}}},
		{name: "missing query", req: get("/api/v1/query", "team-a")},
		{name: "bad PromQL", req: get(q("sum(rate(up[5m])"), "team-a"), vars: []placeholder{{`cannot parse ".*": .*`, `cannot parse "<query>": <parser error>`}}},
		{name: "unknown parameter", req: get(q("up")+"&dedup=false", "team-a"), vars: []placeholder{{`"dedup" for /api/v1/query`, `"<name>" for <path>`}}},
		{name: "repeated parameter", req: get(q("up")+"&time=1&time=2", "team-a"), vars: []placeholder{{`"time" is given 2 times`, `"<name>" is given <n> times`}}},
		{name: "URL and body differ", req: post(q("up"), "team-a", "query=db_password_len"), vars: []placeholder{{`"query"`, `"<name>"`}}},
		{name: "bad URL query", req: get("/api/v1/query?query=up;time=1", "team-a"), vars: []placeholder{{`URL query: .*`, `URL query: <reason>`}}},
		{name: "bad body", req: post("/api/v1/query", "team-a", "query=%zz"), vars: []placeholder{{`body: .*`, `body: <reason>`}}},
		{name: "no match[]", req: get("/api/v1/series", "team-a")},
		{name: "JSON body", req: jsonBody, vars: []placeholder{{`"application/json"`, `"<type>"`}}},
		{name: "slow body", req: slowBody},
		{name: "body too large", req: post("/api/v1/query", "team-a", "query="+strings.Repeat("a", 2<<20)), vars: []placeholder{{`[0-9]+ bytes`, `<max_request_body> bytes`}}},
		{name: "range selector over a union", req: get(q(`{namespace="team-b"}[5m]`), "team-b"),
			vars: []placeholder{{`selector \{namespace="team-b"\}\[5m\]`, `selector <selector>[<range>]`}, {`union of [0-9]+ selectors to be answered exactly \(.*\), one`, `union of <n> selectors to be answered exactly (<selector and policy selector 1> or <selector and policy selector 2> ...), one`}}},
		{name: "union too large", h: tinyUnions, req: get(q(`{namespace="team-b"} + {namespace="team-b"}`), "team-b"),
			vars: []placeholder{{`more than [0-9]+ selectors`, `more than <max_union_selectors> selectors`}, {`selector \{namespace="team-b"\} overlaps`, `selector <selector> overlaps`}}},
		{name: "unsupported construct", h: experimental, req: get(q(`info(up)`), "team-a")},
		{name: "query too long", req: post("/api/v1/query", "team-a", "query="+strings.Repeat("up+", 30000)+"up"), vars: overLimit},
		{name: "query too deep", req: get(q(strings.Repeat("-", 500)+"up"), "team-a"), vars: overLimit},
		{name: "too many match[]", req: get(manyMatch, "team-a"), vars: overLimit},
		{name: "rewritten too large", h: small, req: get(q("up"), "team-a"), vars: overLimit},
		{name: "client left", req: canceled},
		{name: "bad metadata limit", req: get("/api/v1/metadata?limit=ten", "team-a"), vars: []placeholder{{`invalid limit "ten": .*`, `invalid limit "<value>": <reason>`}}},
		{name: "bad metadata limit_per_metric", req: get("/api/v1/metadata?limit_per_metric=one", "team-a"), vars: []placeholder{{`invalid limit_per_metric "one": .*`, `invalid limit_per_metric "<value>": <reason>`}}},
		{name: "no metadata by target", next: noTargetMetadata, req: get("/api/v1/metadata", "team-a"), vars: []placeholder{{`answered 404: not found`, `answered <status>: <upstream's error>`}}},
		{name: "metadata too large", h: smallCap, next: bigAnswer, req: get("/api/v1/metadata", "team-a"),
			vars: []placeholder{{`answer to /api/v1/targets/metadata`, `answer to <path>`}, {`\(1\.0 KiB\)`, `(<size>)`}}},
		{name: "upstream down", next: down, req: get(q("up"), "team-a"), vars: []placeholder{{`Prometheus: .*`, `Prometheus: <cause>`}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			hh := tc.h
			if hh == nil {
				hh = h
			}
			next := tc.next
			if next == nil {
				next = &upstream{}
			}
			w := serve(t, hh, next, tc.req)
			var env struct{ Status, ErrorType, Error string }
			if err := json.Unmarshal(w.Body.Bytes(), &env); err != nil || env.Status != "error" {
				t.Fatalf("%d %s: not a refusal in the envelope", w.Code, w.Body)
			}
			doccheck.Shows(t, doc, doccheck.Answer(t, w.Code, env.ErrorType, withPlaceholders(env.Error, tc.vars)))
		})
	}
}

// TestTroubleshootingValidation checks that the documentation shows the
// validation messages of MetricAccess objects as Validate writes them.
func TestTroubleshootingValidation(t *testing.T) {
	doc := doccheck.Troubleshooting(t)
	obj := func(spec tenancy.MetricAccessSpec) *tenancy.MetricAccess {
		return &tenancy.MetricAccess{
			TypeMeta:   metav1.TypeMeta{APIVersion: tenancy.APIVersion, Kind: tenancy.Kind},
			ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: "app"},
			Spec:       spec,
		}
	}
	obj0 := func(p string) *tenancy.MetricAccess { return obj(tenancy.MetricAccessSpec{Metrics: []string{p}}) }
	rw := func(t *tenancy.RemoteWriteTargetSpec) *tenancy.MetricAccess {
		return obj(tenancy.MetricAccessSpec{Metrics: []string{"up"}, RemoteWrite: &tenancy.RemoteWriteSpec{Enabled: true, Target: t}})
	}
	prom := &tenancy.PrometheusTarget{ServiceName: "prometheus", ServicePort: 9090}
	pgw := &tenancy.PushgatewayTarget{ServiceName: "pushgateway", ServicePort: 9091, JobName: "copy"}
	for _, tc := range []struct {
		name string
		obj  *tenancy.MetricAccess
		vars []placeholder
	}{
		{"no patterns", obj(tenancy.MetricAccessSpec{}), nil},
		{"too many patterns", obj(tenancy.MetricAccessSpec{Metrics: slices.Repeat([]string{"up"}, tenancy.MaxPatternsPerObject+1)}),
			[]placeholder{{`257 patterns`, `<n> patterns`}}},
		{"bad regex", obj0("http_(.*"), []placeholder{{`"http_\(\.\*": .*`, `"<pattern>": <reason>`}, {`\[0\]`, `[<i>]`}}},
		{"bad selector", obj0(`{job="api"`), []placeholder{{`"\{job=\\"api\\"": .*`, `"<pattern>": <reason>`}, {`\[0\]`, `[<i>]`}}},
		{"whitespace", obj0("up "), []placeholder{{`"up "`, `"<pattern>"`}, {`\[0\]`, `[<i>]`}}},
		{"bad label name", obj(tenancy.MetricAccessSpec{Metrics: []string{"up"}, LabelSelectors: map[string]string{"app.kubernetes.io/name": "x"}}),
			[]placeholder{{`"app.kubernetes.io/name"`, `"<name>"`}}},
		{"no target", rw(nil), nil},
		{"no target type", rw(&tenancy.RemoteWriteTargetSpec{Prometheus: prom}), nil},
		{"unknown target type", rw(&tenancy.RemoteWriteTargetSpec{Type: "remoteWrite", RemoteWrite: &tenancy.RemoteWriteTarget{URL: "https://x/"}}), nil},
		{"another type's block", rw(&tenancy.RemoteWriteTargetSpec{Type: "prometheus", Prometheus: prom, Pushgateway: pgw}), nil},
		{"no block of the type", rw(&tenancy.RemoteWriteTargetSpec{Type: "pushgateway"}), nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.obj.Validate()
			if err == nil {
				t.Fatal("valid")
			}
			want := withPlaceholders(err.Error(), append([]placeholder{{`^team-a/app: `, `<namespace>/<name>: `}}, tc.vars...))
			doccheck.Shows(t, doc, want)
		})
	}
}

// TestTroubleshootingNamespaceCap checks that the documentation shows why a
// namespace over max_patterns_per_namespace is no tenant, as the directory
// source reports it (the Kubernetes source's condition carries the same text).
func TestTroubleshootingNamespaceCap(t *testing.T) {
	doc := doccheck.Troubleshooting(t)
	dir := t.TempDir()
	manifest := "apiVersion: " + tenancy.APIVersion + "\nkind: " + tenancy.Kind +
		"\nmetadata: {name: app, namespace: team-a}\nspec: {metrics: [a, b, c]}\n"
	if err := os.WriteFile(filepath.Join(dir, "a.yaml"), []byte(manifest), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	app := &tenancy.App{Directory: &tenancy.DirectorySource{Path: dir}, MaxPatternsPerNamespace: 2}
	if err := app.Provision(ctx); err != nil {
		t.Fatal(err)
	}
	defer app.Cleanup()
	err := app.Directory.Errors()[filepath.Join(dir, "a.yaml")]
	if err == nil {
		t.Fatal("a namespace over the cap has no error")
	}
	want := withPlaceholders(err.Error(), []placeholder{{`namespace team-a`, `namespace <namespace>`},
		{`hold 3 patterns`, `hold <n> patterns`}, {`than the 2 allowed`, `than the <max_patterns_per_namespace> allowed`}})
	doccheck.Shows(t, doc, want)
}

// TestTroubleshootingEqualityWarning checks that the documentation shows the
// Warning condition's line as EqualityWarnings writes it, for the original
// proxy's own example pattern.
func TestTroubleshootingEqualityWarning(t *testing.T) {
	doc := doccheck.Troubleshooting(t)
	m := &tenancy.MetricAccess{Spec: tenancy.MetricAccessSpec{
		Metrics: []string{"http_requests_total", "http_.*", `{job="my-app"}`, `{__name__="up",instance=".*"}`}}}
	w := m.EqualityWarnings()
	if len(w) != 1 {
		t.Fatalf("warnings %q, want one, for instance", w)
	}
	doccheck.Shows(t, doc, w[0])
}
