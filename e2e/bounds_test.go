package e2e

import (
	"net/url"
	"strings"
	"testing"
)

// TestBoundedWorkThroughCaddy sends issue 11's hostile requests through
// bin/caddy to a real Prometheus (Debian's 2.42): each is refused in the
// envelope naming its cap and option before anything reaches the upstream,
// and what is under the caps is answered.
func TestBoundedWorkThroughCaddy(t *testing.T) {
	p := proxyOverSeries(t, `[up]`,
		map[string]string{"__name__": "up", "namespace": "t", "job": "a"},
		map[string]string{"__name__": "up", "namespace": "t", "job": "b"},
	)
	match := func(n int) string {
		v := url.Values{}
		for i := range n {
			v.Add("match[]", `{job="j`+strings.Repeat("x", i%7)+`",instance="`+string(rune('a'+i%26))+`"}`)
		}
		v.Add("match[]", `{job="a"}`)
		return v.Encode()
	}
	for _, tc := range []struct {
		name, method, target, body, contains string
	}{
		// 50,000 nested minus signs: about 20 s of parsing before, then
		// 85 s of the upstream's.
		{"deep unary chain", "POST", "/api/v1/query", "query=" + url.QueryEscape(strings.Repeat("-", 50000)+"up"),
			"query nesting depth 50001 is over the limit of 200; the prom_tenant option max_query_depth raises it"},
		{"deep parentheses", "POST", "/api/v1/query", "query=" + url.QueryEscape(strings.Repeat("(", 5000)+"up"+strings.Repeat(")", 5000)),
			"query nesting depth 5001 is over the limit of 200; the prom_tenant option max_query_depth raises it"},
		{"long query", "POST", "/api/v1/query", "query=" + strings.Repeat("up+", 30000) + "up",
			"query length 90002 bytes is over the limit of 65536 bytes; the prom_tenant option max_query_length raises it"},
		{"too many match[]", "POST", "/api/v1/series", match(1000),
			"number of match[] selectors 1001 is over the limit of 1000; the prom_tenant option max_matchers raises it"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, env, _ := do(t, request(t, tc.method, p.url+tc.target, "t", tc.body))
			if status != 400 || env.ErrorType != "bad_data" || env.Error != tc.contains {
				t.Errorf("got %d %s %q, want 400 bad_data %q", status, env.ErrorType, env.Error, tc.contains)
			}
		})
	}
	// 999 match[] that all merge (800 took 16.7 s of CPU before): answered.
	status, env, _ := do(t, request(t, "POST", p.url+"/api/v1/series", "t", match(999)))
	if status != 200 || env.Status != "success" || !strings.Contains(string(env.Data), `"job":"a"`) {
		t.Errorf("999 match[]: %d %s %s", status, env.Error, env.Data)
	}
}

// TestUserMatchAllRegexOn2x: a user's job=~".*" is kept as written, so 2.x
// reads it as a tenant-only 2.x would: "." does not match a newline there,
// and the series whose job holds one is not selected.
func TestUserMatchAllRegexOn2x(t *testing.T) {
	p := proxyOverSeries(t, `[up]`,
		map[string]string{"__name__": "up", "namespace": "t", "job": "a\nb"},
		map[string]string{"__name__": "up", "namespace": "t", "job": "x"},
	)
	prom := p.prom
	for _, tc := range []struct{ query, tenantOnly, want string }{
		{`count(up{job=~".*"})`, `count(up{job=~".*",namespace="t"})`, `"1"]`},
		{`count(up{job!~".*"})`, `count(up{job!~".*",namespace="t"})`, `"1"]`},
		{`count(up)`, `count(up{namespace="t"})`, `"2"]`},
	} {
		// The tenant-only answer: the tenant's series are exactly namespace="t".
		direct := get(t, prom.URL+"/api/v1/query?"+url.Values{"query": {tc.tenantOnly}}.Encode(), "")
		if !strings.Contains(direct, tc.want) {
			t.Fatalf("%s on Prometheus directly: %s, want %s", tc.tenantOnly, direct, tc.want)
		}
		body := get(t, p.url+"/api/v1/query?"+url.Values{"query": {tc.query}}.Encode(), "t")
		if !strings.Contains(body, tc.want) {
			t.Errorf("%s through the proxy: %s, want %s as Prometheus answers", tc.query, body, tc.want)
		}
	}
}
