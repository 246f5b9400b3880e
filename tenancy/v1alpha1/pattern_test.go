package v1alpha1

import (
	"strings"
	"testing"

	"github.com/prom-tenant/caddy-prom-tenant/rewrite"
)

func TestParsePattern(t *testing.T) {
	tests := []struct {
		pattern string
		want    string // Selector.String()
		wantErr string
	}{
		{pattern: "http_requests_total", want: `{__name__="http_requests_total"}`},
		{pattern: "node:cpu:rate5m", want: `{__name__="node:cpu:rate5m"}`},
		{pattern: "http_.*", want: `{__name__=~"http_.*"}`},
		{pattern: "up|process_.+", want: `{__name__=~"up|process_.+"}`},
		{pattern: ".*", want: `{__name__=~".*"}`},
		{pattern: "a-b", want: `{__name__="a-b"}`}, // no metacharacters: same as the anchored regex
		{pattern: `{job="my-app"}`, want: `{job="my-app"}`},
		{pattern: `up{job="my-app"}`, want: `{__name__="up",job="my-app"}`},
		{pattern: `{__name__=~"http_.*",code!~"5.."}`, want: `{__name__=~"http_.*",code!~"5.."}`},
		{pattern: `{"utf8.metric"}`, want: `{__name__="utf8.metric"}`},
		{pattern: "http_(", wantErr: `invalid regex "http_("`},
		{pattern: `up{job=}`, wantErr: `invalid selector "up{job=}"`},
		{pattern: `rate(up[5m])`, want: `{__name__=~"rate(up[5m])"}`}, // no braces: a regex, not PromQL
		{pattern: `rate(up[5m]`, wantErr: `invalid regex "rate(up[5m]"`},
		{pattern: `up{job="x"}[5m]`, wantErr: "invalid selector"},
		{pattern: `up{job="x"} or down`, wantErr: "invalid selector"},
		{pattern: "", wantErr: "empty pattern"},
		{pattern: " up", wantErr: "whitespace"},
		{pattern: strings.Repeat("a", MaxPatternBytes), want: `{__name__="` + strings.Repeat("a", MaxPatternBytes) + `"}`},
		{pattern: strings.Repeat("a", MaxPatternBytes+1), wantErr: "oversized regex"},
	}
	for _, tt := range tests {
		name := tt.pattern
		if len(name) > 40 {
			name = name[:40]
		}
		t.Run(name, func(t *testing.T) {
			ms, err := ParsePattern(tt.pattern)
			if tt.wantErr != "" {
				wantErrContains(t, err, tt.wantErr)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := rewrite.Selector(ms).String(); got != tt.want {
				t.Errorf("got %s, want %s", got, tt.want)
			}
		})
	}
}
