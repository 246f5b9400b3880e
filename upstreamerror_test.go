package promtenant

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

// answering is an upstream that answers status with body and content type.
func answering(status int, contentType, encoding string, body []byte) *upstream {
	return &upstream{respond: func(w http.ResponseWriter, _ *http.Request) error {
		w.Header().Set("Content-Type", contentType)
		if encoding != "" {
			w.Header().Set("Content-Encoding", encoding)
		}
		w.Header().Set("Content-Length", "12345")
		w.Header().Set("Retry-After", "5")
		w.WriteHeader(status)
		_, err := w.Write(body)
		return err
	}}
}

func gzipped(s string) []byte {
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	_, _ = zw.Write([]byte(s))
	_ = zw.Close()
	return b.Bytes()
}

// servedPaths is a request to every path prom_tenant forwards.
var servedPaths = []string{
	"/api/v1/query?query=up",
	"/api/v1/query_range?query=up&start=0&end=60&step=15",
	"/api/v1/query_exemplars?query=up",
	"/api/v1/series?match[]=up",
	"/api/v1/labels",
	"/api/v1/label/job/values",
	"/federate?match[]=up",
	"/api/v1/status/buildinfo",
}

// TestUpstreamNonJSONErrorsAreEnveloped: the upstream's own error answers
// that are not JSON reach the tenant in Prometheus's envelope, with the
// upstream's status and its text, on every forwarded path.
func TestUpstreamNonJSONErrorsAreEnveloped(t *testing.T) {
	nginx := `<html>
<head><title>502 Bad Gateway</title><style>body { width: 35em; }</style></head>
<body><center><h1>502 Bad Gateway</h1></center><hr><center>nginx</center>
<script>alert("x")</script></body></html>`
	for _, tc := range []struct {
		name                 string
		next                 *upstream
		status               int
		errorType, wantError string
	}{
		{"Prometheus starting", answering(503, "text/plain; charset=utf-8", "", []byte("Service Unavailable\n")),
			503, "unavailable", "upstream answered 503 Service Unavailable: Service Unavailable"},
		{"load balancer page", answering(502, "text/html", "", []byte(nginx)),
			502, "unavailable", "upstream answered 502 Bad Gateway: 502 Bad Gateway 502 Bad Gateway nginx"},
		{"gzip", answering(500, "text/plain", "gzip", gzipped("boom\n\tsecond line")),
			500, "internal", "upstream answered 500 Internal Server Error: boom second line"},
		{"other encoding", answering(500, "text/plain", "br", []byte{1, 2, 3}),
			500, "internal", "upstream answered 500 Internal Server Error: (body in br encoding)"},
		{"no body", answering(404, "", "", nil), 404, "not_found", "upstream answered 404 Not Found"},
		{"gateway timeout", answering(504, "text/plain", "", []byte("timeout")), 504, "timeout", "upstream answered 504 Gateway Timeout: timeout"},
		{"another proxy's address", answering(502, "text/plain", "", []byte("dial tcp 10.0.0.9:9090: connect: connection refused")),
			502, "unavailable", "upstream answered 502 Bad Gateway: dial tcp <address>: connect: connection refused"},
		{"not quite an envelope", answering(400, "text/plain", "", []byte(`{"status":"error","error":"x"}`)),
			400, "bad_data", `upstream answered 400 Bad Request: {"status":"error","error":"x"}`},
		{"long", answering(500, "text/plain", "", bytes.Repeat([]byte("é"), 100_000)),
			500, "internal", "upstream answered 500 Internal Server Error: " + strings.Repeat("é", maxUpstreamErrorText/2) + "…"},
	} {
		for _, path := range servedPaths {
			t.Run(tc.name+path, func(t *testing.T) {
				w := serve(t, newTestHandler(t), tc.next, get(path, "team-a"))
				var env struct{ Status, ErrorType, Error string }
				if err := json.Unmarshal(w.Body.Bytes(), &env); err != nil {
					t.Fatalf("%d %q: not JSON", w.Code, w.Body)
				}
				if w.Code != tc.status || env.Status != "error" || env.ErrorType != tc.errorType || env.Error != tc.wantError {
					t.Errorf("got %d %+v, want %d %s %q", w.Code, env, tc.status, tc.errorType, tc.wantError)
				}
				h := w.Header()
				if h.Get("Content-Type") != "application/json" || h.Get("Content-Encoding") != "" || h.Get("Content-Length") != "" {
					t.Errorf("headers %v: the upstream's body headers must go", h)
				}
				if h.Get("Retry-After") != "5" {
					t.Errorf("Retry-After %q: the upstream's other headers stay", h.Get("Retry-After"))
				}
			})
		}
	}
}

// TestUpstreamJSONPassesUntouched: JSON answers, errors included, are the
// upstream's own bytes.
func TestUpstreamJSONPassesUntouched(t *testing.T) {
	for _, tc := range []struct {
		status      int
		contentType string
		body        string
	}{
		{400, "application/json", `{"status":"error","errorType":"bad_data","error":"exceeded maximum resolution"}`},
		{503, "application/json; charset=utf-8", `{"status":"error","errorType":"unavailable","error":"x"}`},
		{422, "application/problem+json", `{"title":"y"}`},
		{200, "text/plain; version=0.0.4", "up 1\n"}, // /federate's answer is text: a success is never touched
	} {
		w := serve(t, newTestHandler(t), answering(tc.status, tc.contentType, "", []byte(tc.body)), get("/federate?match[]=up", "team-a"))
		if w.Code != tc.status || w.Body.String() != tc.body || w.Header().Get("Content-Type") != tc.contentType {
			t.Errorf("%d %s: got %d %q %q", tc.status, tc.contentType, w.Code, w.Header().Get("Content-Type"), w.Body)
		}
	}
}

// TestUpstreamEnvelopePassesWhateverItsType: an error body that is
// Prometheus's envelope is the upstream's own answer, passed on as it is
// (decoded, typed JSON), whatever its Content-Type says: Thanos Query
// Frontend sends its envelopes as text/plain.
func TestUpstreamEnvelopePassesWhateverItsType(t *testing.T) {
	const env = `{"status":"error","errorType":"execution","error":"expanding series: dial tcp 10.0.0.9:10901","warnings":["w"]}`
	for _, tc := range []struct {
		name                  string
		contentType, encoding string
		body                  []byte
	}{
		{"text/plain", "text/plain; charset=utf-8", "", []byte(env)},
		{"no type", "", "", []byte(env)},
		{"gzip", "text/plain", "gzip", gzipped(env)},
	} {
		for _, path := range servedPaths {
			w := serve(t, newTestHandler(t), answering(422, tc.contentType, tc.encoding, tc.body), get(path, "team-a"))
			h := w.Header()
			if w.Code != 422 || w.Body.String() != env || h.Get("Content-Type") != "application/json" || h.Get("Content-Encoding") != "" || h.Get("Content-Length") != "" {
				t.Errorf("%s %s: got %d %v %q, want 422 and the upstream's envelope as it is", tc.name, path, w.Code, h, w.Body)
			}
		}
	}
}

// TestUpstreamSuccessIsNotHeld: a successful answer reaches the client as it
// streams (written and flushed before the upstream is done), never buffered.
func TestUpstreamSuccessIsNotHeld(t *testing.T) {
	var seen string
	var rec *bytes.Buffer
	u := &upstream{respond: func(w http.ResponseWriter, _ *http.Request) error {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		if _, err := w.Write([]byte(`{"status":"success",`)); err != nil {
			return err
		}
		if err := http.NewResponseController(w).Flush(); err != nil {
			return err
		}
		seen = rec.String()
		_, err := w.Write([]byte(`"data":[]}`))
		return err
	}}
	h := newTestHandler(t)
	w := httptest.NewRecorder()
	rec = w.Body
	r := caddyhttp.PrepareRequest(get("/api/v1/series?match[]=up", "team-a"), caddy.NewReplacer(), w, nil)
	if err := h.ServeHTTP(w, r, u); err != nil {
		t.Fatal(err)
	}
	if seen != `{"status":"success",` || !w.Flushed {
		t.Errorf("before the upstream finished the client had %q (flushed %v): the answer was held", seen, w.Flushed)
	}
}

// TestUpstreamUnreachableNamesNoAddress: when reverse_proxy got no answer,
// the tenant learns the kind of failure, never the upstream's address; the
// handler's log keeps the cause.
func TestUpstreamUnreachableNamesNoAddress(t *testing.T) {
	for _, tc := range []struct {
		err               error
		status            int
		errorType, errMsg string
	}{
		{caddyhttp.Error(502, errors.New("dial tcp 10.0.0.9:9090: connect: connection refused")), 502, "unavailable",
			"upstream unavailable: the upstream Prometheus could not be reached"},
		{caddyhttp.Error(503, errors.New("no upstreams available")), 503, "unavailable", "upstream unavailable: no upstreams available"},
		{caddyhttp.Error(504, &url.Error{Op: "Get", URL: "http://10.0.0.9:9090/api/v1/query", Err: errors.New("i/o timeout")}), 504, "timeout",
			"upstream timeout: the upstream Prometheus did not answer in time"},
	} {
		u := &upstream{respond: func(http.ResponseWriter, *http.Request) error { return tc.err }}
		h := newTestHandler(t)
		core, logs := observer.New(zapcore.ErrorLevel)
		h.logger = zap.New(core)
		w := serve(t, h, u, get("/api/v1/query?query=up", "team-a"))
		var env struct{ Status, ErrorType, Error string }
		if err := json.Unmarshal(w.Body.Bytes(), &env); err != nil {
			t.Fatalf("%d %q: not JSON", w.Code, w.Body)
		}
		if w.Code != tc.status || env.ErrorType != tc.errorType || env.Error != tc.errMsg || strings.Contains(w.Body.String(), "10.0.0.9") {
			t.Errorf("%v: got %d %+v, want %d %s %q", tc.err, w.Code, env, tc.status, tc.errorType, tc.errMsg)
		}
		var he caddyhttp.HandlerError
		errors.As(tc.err, &he)
		if e := logs.All(); len(e) != 1 || e[0].ContextMap()["error"] != he.Err.Error() || e[0].ContextMap()["tenant"] != "team-a" {
			t.Errorf("%v: logged %v, want one error entry with the cause", tc.err, e)
		}
	}
}
