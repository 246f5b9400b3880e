package promtenant

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"

	"github.com/prom-tenant/caddy-prom-tenant/internal/promapi"
)

// Each cap refuses with 400 in the envelope, naming the cap, the value and
// the option that raises it, and nothing reaches the upstream.
func TestLimitsRefuseBeforeForwarding(t *testing.T) {
	h := newTestHandler(t)
	deep := "/api/v1/query?query=" + url.QueryEscape(strings.Repeat("-", 50000)+"up")
	for _, tc := range []struct {
		name string
		req  *http.Request
		want string
	}{
		{"deep unary chain", get(deep, "team-a"), "query nesting depth 50001 is over the limit of 200; the prom_tenant option max_query_depth raises it"},
		{"long query", post("/api/v1/query", "team-a", "query="+strings.Repeat("up+", 30000)+"up"),
			"query length 90002 bytes is over the limit of 65536 bytes; the prom_tenant option max_query_length raises it"},
		{"many match[] to federate", get("/federate?"+strings.Repeat("match[]=up&", 1001), "team-a"),
			"number of match[] selectors 1001 is over the limit of 1000; the prom_tenant option max_matchers raises it"},
		{"deep match[]", get("/api/v1/series?match[]="+url.QueryEscape(strings.Repeat("(", 300)+"up"), "team-a"),
			"query nesting depth 301 is over the limit of 200; the prom_tenant option max_query_depth raises it"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			next := &upstream{}
			w := serve(t, h, next, tc.req)
			var env struct{ Status, ErrorType, Error string }
			if err := json.Unmarshal(w.Body.Bytes(), &env); err != nil {
				t.Fatal(err)
			}
			if w.Code != http.StatusBadRequest || env.ErrorType != "bad_data" || env.Error != tc.want {
				t.Errorf("got %d %+v, want 400 bad_data %q", w.Code, env, tc.want)
			}
			if next.got != nil {
				t.Error("the request was forwarded")
			}
		})
	}
}

// The Caddyfile options reach the enforcer.
func TestLimitOptionsApply(t *testing.T) {
	h := newTestHandler(t)
	h.MaxQueryDepth, h.MaxMatchers = 600, 2000
	h.provisionDefaults(caddy.Context{Context: context.Background()})
	h.logger = newTestHandler(t).logger
	next := &upstream{}
	w := serve(t, h, next, get("/api/v1/query?query="+url.QueryEscape(strings.Repeat("-", 500)+"up"), "team-a"))
	if w.Code != http.StatusOK || next.got == nil {
		t.Fatalf("depth 501 under max_query_depth 600: %d %s", w.Code, w.Body)
	}
}

// A request whose client has gone is not rewritten to the end nor
// forwarded: 499, reason canceled.
func TestCanceledRequestNotForwarded(t *testing.T) {
	h := newTestHandler(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	next := &upstream{}
	r := get("/api/v1/series?"+strings.Repeat("match[]=up&", 500), "team-b").WithContext(ctx)
	w := serve(t, h, next, r)
	if w.Code != promapi.StatusClientClosedRequest || next.got != nil {
		t.Fatalf("got %d %s (forwarded: %v), want 499 and nothing forwarded", w.Code, w.Body, next.got != nil)
	}
}

func TestLimitValidation(t *testing.T) {
	for _, h := range []Handler{{MaxQueryLength: -1}, {MaxQueryDepth: -1}, {MaxMatchers: -1}, {MaxRewrittenSize: -1}} {
		if err := h.Validate(); err == nil || !strings.Contains(err.Error(), "must not be negative") {
			t.Errorf("%+v: Validate() = %v", h, err)
		}
	}
}
