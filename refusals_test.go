package promtenant

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/prometheus/prometheus/promql/parser"

	"github.com/prom-tenant/caddy-prom-tenant/rewrite"
)

// refusalCase is one refusal of the handler: the request that triggers it
// and what it must say. TestTroubleshootingRefusals checks that the doc
// shows each answer; TestRefusalReasons that each is counted under its
// reason.
type refusalCase struct {
	name string
	h    *Handler          // nil: the default test handler
	next caddyhttp.Handler // nil: an upstream that must not be reached
	req  *http.Request
	// vars turn the answer's variable parts into the doc's placeholders.
	vars []placeholder
	// The labels of prometheus_proxy_requests_total it counts under;
	// outcome "" is "refused".
	tenant, endpoint, outcome, reason string
}

// refusalCases are the handler's refusals, each triggered once.
func refusalCases(t *testing.T) []refusalCase {
	experimental := newTestHandler(t)
	experimental.enforcer = rewrite.NewEnforcer(parser.Options{EnableExperimentalFunctions: true}) // info() parses, then is refused
	tinyUnions := newTestHandler(t)
	tinyUnions.enforcer = tinyUnions.enforcer.WithLimits(rewrite.Limits{MaxUnionSelectors: 2})
	small := newTestHandler(t)
	small.enforcer = small.enforcer.WithLimits(rewrite.Limits{MaxRewrittenSize: 16})
	// Just under team-a's up{namespace="team-a"}, 22 bytes, and over the
	// lower bound the rewriter estimates as it goes, 20: refused once printed.
	justUnder := newTestHandler(t)
	justUnder.enforcer = justUnder.enforcer.WithLimits(rewrite.Limits{MaxRewrittenSize: 21})
	smallCap := newTestHandler(t)
	smallCap.MaxMetadataResponse = 1024
	thanosParams := thanosTestHandler(t)
	thanosReplicas := thanosTestHandler(t, "replica")
	bigNames := []byte(`{"status":"success","data":["replica"` + strings.Repeat(`,"x"`, maxLabelNamesAnswer/4) + `]}`)

	down := &upstream{respond: func(http.ResponseWriter, *http.Request) error {
		return caddyhttp.Error(http.StatusBadGateway, errors.New("dial tcp 10.0.0.9:9090: connect: connection refused"))
	}}
	noUpstreams := &upstream{respond: func(http.ResponseWriter, *http.Request) error {
		return caddyhttp.Error(http.StatusServiceUnavailable, errors.New("no upstreams available"))
	}}
	slowUpstream := &upstream{respond: func(http.ResponseWriter, *http.Request) error {
		return caddyhttp.Error(http.StatusGatewayTimeout, &net.OpError{Op: "dial", Net: "tcp", Err: os.ErrDeadlineExceeded})
	}}
	bigAnswer := caddyhttp.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) error {
		_, err := w.Write([]byte(`{"status":"success","data":[` + strings.Repeat(" ", 4096)))
		return err
	})
	noTargetMetadata := &upstream{respond: func(w http.ResponseWriter, _ *http.Request) error {
		w.Header().Set("Content-Type", "application/json") // as Prometheus's API answers
		w.WriteHeader(http.StatusNotFound)
		_, err := w.Write([]byte(`{"status":"error","errorType":"not_found","error":"not found"}`))
		return err
	}}

	q := func(query string) string { return "/api/v1/query?query=" + url.QueryEscape(query) }
	manyMatch := "/api/v1/series?" + strings.Repeat("match[]=up&", 1001) + "match[]=up"
	someMatch := "/api/v1/series?" + strings.Repeat("match[]=up&", 10) + "match[]=up"
	gone, cancel := context.WithCancel(context.Background())
	cancel()
	past, cancelPast := context.WithDeadline(context.Background(), time.Unix(0, 0))
	t.Cleanup(cancelPast)
	jsonBody := post("/api/v1/query", "team-a", `{"query":"up"}`)
	jsonBody.Header.Set("Content-Type", "application/json")
	// What the body read returns when the server's read_body timeout expires.
	slowBody := post("/api/v1/query", "team-a", "")
	slowBody.Body = io.NopCloser(iotest.ErrReader(&net.OpError{Op: "read", Net: "tcp", Err: os.ErrDeadlineExceeded}))
	overLimit := []placeholder{{`[0-9]+( bytes)? is over the limit of [0-9]+`, `<n>$1 is over the limit of <max>`}}
	const query, series, metadata = "/api/v1/query", "/api/v1/series", "/api/v1/metadata"

	return []refusalCase{
		{name: "no tenant", req: get(q("up"), ""), tenant: unknownTenant, endpoint: query, reason: "no_tenant"},
		{name: "unknown tenant", req: get(q("up"), "team-c"), vars: []placeholder{{`"team-c"`, `"<namespace>"`}},
			tenant: unknownTenant, endpoint: query, reason: "unknown_tenant"},
		{name: "more than one tenant", req: get(q("up"), "team-a,team-b"), vars: []placeholder{{`\("team-a,team-b"\)`, `("<value>")`}},
			tenant: unknownTenant, endpoint: query, reason: "bad_tenant"},
		{name: "not a namespace name", req: get(q("up"), "Team_A"), vars: []placeholder{{`"Team_A" is not a namespace name: .*`, `"<value>" is not a namespace name: <reason>`}},
			tenant: unknownTenant, endpoint: query, reason: "bad_tenant"},
		{name: "path not served", req: get("/api/v1/rules", "team-a"), vars: []placeholder{{`"/api/v1/rules"`, `"<path>"`}},
			tenant: unknownTenant, endpoint: "other", reason: "not_found"},
		{name: "health path not served", req: get("/-/healthy", "team-a"), vars: []placeholder{{`"/-/healthy"`, `"<path>"`}},
			tenant: unknownTenant, endpoint: "other", reason: "not_found"},
		{name: "invalid label name", req: get("/api/v1/label/a-b/values", "team-a"), vars: []placeholder{{`"/api/v1/label/a-b/values"`, `"<path>"`}},
			tenant: unknownTenant, endpoint: "other", reason: "not_found"},
		{name: "method not allowed", req: post("/federate", "team-a", "match[]=up"), vars: []placeholder{{`method POST is not allowed for /federate`, `method <method> is not allowed for <path>`}},
			tenant: unknownTenant, endpoint: "/federate", reason: "method"},
		{name: "missing query", req: get("/api/v1/query", "team-a"), tenant: "team-a", endpoint: query, reason: "bad_request"},
		{name: "bad PromQL", req: get(q("sum(rate(up[5m])"), "team-a"), vars: []placeholder{{`cannot parse ".*": .*`, `cannot parse "<query>": <parser error>`}},
			tenant: "team-a", endpoint: query, reason: "bad_query"},
		{name: "unknown parameter", req: get(q("up")+"&bogus=1", "team-a"), vars: []placeholder{{`"bogus" for /api/v1/query`, `"<name>" for <path>`}},
			tenant: "team-a", endpoint: query, reason: "bad_request"},
		{name: "backend parameter not allowed", req: get(q("up")+"&dedup=false", "team-a"), vars: []placeholder{{`"dedup" \(Thanos\)`, `"<name>" (<engine>)`}},
			tenant: "team-a", endpoint: query, reason: "bad_request"},
		{name: "invalid backend parameter", h: thanosParams, req: get(q("up")+"&dedup=maybe", "team-a"), vars: []placeholder{{`invalid dedup "maybe": .*`, `invalid <name> "<value>": <what it takes>`}},
			tenant: "team-a", endpoint: query, reason: "bad_request"},
		{name: "enforcement parameter", h: thanosParams, req: get(q("up")+"&extra_label=namespace%3Dteam-b", "team-a"), vars: []placeholder{{`"extra_label" is VictoriaMetrics's`, `"<name>" is <engine>'s`}},
			tenant: "team-a", endpoint: query, reason: "bad_request"},
		{name: "federate with backend thanos", h: thanosParams, req: get("/federate?match[]=up", "team-a"), tenant: "team-a", endpoint: "/federate", reason: "not_found"},
		{name: "metadata with backend thanos", h: thanosParams, req: get("/api/v1/metadata", "team-a"), tenant: "team-a", endpoint: metadata, reason: "not_found"},
		// No tenant is 401 first: the backend is none of an anonymous client's business.
		{name: "federate with backend thanos, no tenant", h: thanosParams, req: get("/federate?match[]=up", ""), tenant: unknownTenant, endpoint: "/federate", reason: "no_tenant"},
		{name: "repeated parameter", req: get(q("up")+"&time=1&time=2", "team-a"), vars: []placeholder{{`"time" is given 2 times`, `"<name>" is given <n> times`}},
			tenant: "team-a", endpoint: query, reason: "bad_request"},
		{name: "URL and body differ", req: post(q("up"), "team-a", "query=db_password_len"), vars: []placeholder{{`"query"`, `"<name>"`}},
			tenant: "team-a", endpoint: query, reason: "bad_request"},
		{name: "bad URL query", req: get("/api/v1/query?query=up;time=1", "team-a"), vars: []placeholder{{`URL query: .*`, `URL query: <reason>`}},
			tenant: "team-a", endpoint: query, reason: "bad_request"},
		{name: "bad body", req: post("/api/v1/query", "team-a", "query=%zz"), vars: []placeholder{{`body: .*`, `body: <reason>`}},
			tenant: "team-a", endpoint: query, reason: "bad_request"},
		{name: "no match[]", req: get("/api/v1/series", "team-a"), tenant: "team-a", endpoint: series, reason: "bad_request"},
		{name: "bad time", req: get(q("up")+"&time=yesterday", "team-a"), vars: []placeholder{{`"time": invalid time value for 'time': cannot parse "yesterday"`, `"<name>": invalid time value for '<name>': cannot parse "<value>"`}},
			tenant: "team-a", endpoint: query, reason: "bad_request"},
		{name: "bad duration", req: get(q("up")+"&timeout=5x", "team-a"), vars: []placeholder{{`"timeout": cannot parse "5x"`, `"<name>": cannot parse "<value>"`}},
			tenant: "team-a", endpoint: query, reason: "bad_request"},
		{name: "duration overflows", req: get(q("up")+"&timeout=1e300", "team-a"), vars: []placeholder{{`"timeout": cannot parse "1e300"`, `"<name>": cannot parse "<value>"`}},
			tenant: "team-a", endpoint: query, reason: "bad_request"},
		{name: "bad lookback delta", req: get(q("up")+"&lookback_delta=5x", "team-a"), vars: []placeholder{{`cannot parse "5x"`, `cannot parse "<value>"`}},
			tenant: "team-a", endpoint: query, reason: "bad_request"},
		{name: "time overflows", req: get(q("up")+"&time=1e19", "team-a"), vars: []placeholder{{`"time": invalid time value for 'time': cannot parse "1e19"`, `"<name>": invalid time value for '<name>': cannot parse "<value>"`}},
			tenant: "team-a", endpoint: query, reason: "bad_request"},
		{name: "step not positive", req: get("/api/v1/query_range?query=up&start=0&end=1&step=0", "team-a"), tenant: "team-a", endpoint: "/api/v1/query_range", reason: "bad_request"},
		{name: "timeout not positive", req: get(q("up")+"&timeout=-1", "team-a"), vars: []placeholder{{`got -1s`, `got <duration>`}},
			tenant: "team-a", endpoint: query, reason: "bad_request"},
		{name: "JSON body", req: jsonBody, vars: []placeholder{{`"application/json"`, `"<type>"`}},
			tenant: "team-a", endpoint: query, reason: "content_type"},
		{name: "slow body", req: slowBody, tenant: "team-a", endpoint: query, reason: "bad_request"},
		{name: "body too large", req: post("/api/v1/query", "team-a", "query="+strings.Repeat("a", 2<<20)), vars: []placeholder{{`[0-9]+ bytes`, `<max_request_body> bytes`}},
			tenant: "team-a", endpoint: query, reason: "body_too_large"},
		{name: "range selector over a union", req: get(q(`{namespace="team-b"}[5m]`), "team-b"),
			vars:   []placeholder{{`selector \{namespace="team-b"\}\[5m\]`, `selector <selector>[<range>]`}, {`union of [0-9]+ selectors to be answered exactly \(.*\), one`, `union of <n> selectors to be answered exactly (<selector and policy selector 1> or <selector and policy selector 2> ...), one`}},
			tenant: "team-b", endpoint: query, reason: "irreducible_union"},
		{name: "union too large", h: tinyUnions, req: get(q(`{namespace="team-b"} + {namespace="team-b"}`), "team-b"),
			vars:   []placeholder{{`more than [0-9]+ selectors`, `more than <max_union_selectors> selectors`}, {`selector \{namespace="team-b"\} overlaps`, `selector <selector> overlaps`}},
			tenant: "team-b", endpoint: query, reason: "limit"},
		{name: "unsupported construct", h: experimental, req: get(q(`info(up)`), "team-a"), tenant: "team-a", endpoint: query, reason: "unsupported"},
		{name: "query too long", req: post("/api/v1/query", "team-a", "query="+strings.Repeat("up+", 30000)+"up"), vars: overLimit,
			tenant: "team-a", endpoint: query, reason: "limit"},
		{name: "query too deep", req: get(q(strings.Repeat("-", 500)+"up"), "team-a"), vars: overLimit, tenant: "team-a", endpoint: query, reason: "limit"},
		{name: "too many match[]", req: get(manyMatch, "team-a"), vars: overLimit, tenant: "team-a", endpoint: series, reason: "limit"},
		{name: "rewritten too large", h: small, req: get(q("up"), "team-a"), vars: overLimit, tenant: "team-a", endpoint: query, reason: "limit"},
		{name: "rewritten too large once printed", h: justUnder, req: get(q("up"), "team-a"), vars: overLimit, tenant: "team-a", endpoint: query, reason: "limit"},
		{name: "client left", req: get(someMatch, "team-b").WithContext(gone), tenant: "team-b", endpoint: series, reason: "canceled"},
		{name: "deadline passed", req: get(someMatch, "team-b").WithContext(past), tenant: "team-b", endpoint: series, reason: "canceled"},
		{name: "bad metadata limit", req: get("/api/v1/metadata?limit=ten", "team-a"), vars: []placeholder{{`invalid limit "ten": .*`, `invalid limit "<value>": <reason>`}},
			tenant: "team-a", endpoint: metadata, reason: "bad_request"},
		{name: "bad metadata limit_per_metric", req: get("/api/v1/metadata?limit_per_metric=one", "team-a"), vars: []placeholder{{`invalid limit_per_metric "one": .*`, `invalid limit_per_metric "<value>": <reason>`}},
			tenant: "team-a", endpoint: metadata, reason: "bad_request"},
		{name: "no metadata by target", next: noTargetMetadata, req: get("/api/v1/metadata", "team-a"), vars: []placeholder{{`answered 404: not found`, `answered <status>: <upstream's error>`}},
			tenant: "team-a", endpoint: metadata, outcome: "upstream_error", reason: "upstream"},
		{name: "metadata too large", h: smallCap, next: bigAnswer, req: get("/api/v1/metadata", "team-a"),
			vars:   []placeholder{{`answer to /api/v1/targets/metadata`, `answer to <path>`}, {`\(1\.0 KiB\)`, `(<size>)`}},
			tenant: "team-a", endpoint: metadata, reason: "too_large"},
		{name: "backend parameter never forwarded", h: thanosParams, req: get(q("up")+"&analyze=true", "team-a"), vars: []placeholder{{`"analyze" is never forwarded: .*`, `"<name>" is never forwarded: <reason>`}},
			tenant: "team-a", endpoint: query, reason: "bad_request"},
		{name: "thanos label names too large", h: thanosReplicas, next: answering(200, "application/json", "", bigNames), req: get("/api/v1/labels", "team-a"),
			tenant: "team-a", endpoint: "/api/v1/labels", reason: "too_large"},
		{name: "thanos label names unreadable", h: thanosReplicas, next: answering(200, "application/json", "", []byte(`["replica"]`)), req: get("/api/v1/labels", "team-a"),
			tenant: "team-a", endpoint: "/api/v1/labels", outcome: "upstream_error", reason: "upstream"},
		{name: "upstream down", next: down, req: get(q("up"), "team-a"), tenant: "team-a", endpoint: query, outcome: "upstream_error", reason: "upstream"},
		{name: "no upstream to try", next: noUpstreams, req: get(q("up"), "team-a"), tenant: "team-a", endpoint: query, outcome: "upstream_error", reason: "upstream"},
		{name: "upstream timeout", next: slowUpstream, req: get(q("up"), "team-a"), tenant: "team-a", endpoint: query, outcome: "upstream_error", reason: "upstream"},
		{name: "upstream's own error page", next: answering(502, "text/html", "", []byte("<h1>Bad Gateway</h1>")), req: get(q("up"), "team-a"),
			vars:   []placeholder{{`answered 502 Bad Gateway: Bad Gateway`, `answered <status> <status text>: <upstream's text>`}},
			tenant: "team-a", endpoint: query, outcome: "forwarded", reason: ""},
	}
}

// serveRefusal serves tc's request and fails t unless it was refused, and,
// where no next handler answers, refused before the upstream.
func serveRefusal(t *testing.T, def *Handler, tc refusalCase) *httptest.ResponseRecorder {
	t.Helper()
	h := tc.h
	if h == nil {
		h = def
	}
	next := tc.next
	if next == nil {
		next = &upstream{}
	}
	w := serve(t, h, next, tc.req)
	if u, ok := next.(*upstream); w.Code < 400 || tc.next == nil && ok && u.got != nil {
		t.Fatalf("not refused: %d %s", w.Code, w.Body)
	}
	return w
}
