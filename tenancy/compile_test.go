package tenancy

import (
	"github.com/prometheus/prometheus/model/labels"
	"strings"
	"testing"
)

func TestCompilePattern(t *testing.T) {
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
			sel, err := compilePattern(tt.pattern)
			if tt.wantErr != "" {
				wantErrContains(t, err, tt.wantErr)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := sel.String(); got != tt.want {
				t.Errorf("got %s, want %s", got, tt.want)
			}
		})
	}
}

func TestCompileNamespace(t *testing.T) {
	withLabels := func(m *MetricAccess, kv ...string) *MetricAccess {
		m.Spec.LabelSelectors = map[string]string{}
		for i := 0; i < len(kv); i += 2 {
			m.Spec.LabelSelectors[kv[i]] = kv[i+1]
		}
		return m
	}
	isolated := func(m *MetricAccess) *MetricAccess {
		m.Spec.MetricIsolation = true
		return m
	}
	tests := []struct {
		name string
		objs []*MetricAccess
		want string
	}{
		{
			name: "metric name",
			objs: []*MetricAccess{newMA("a", "x", "up")},
			want: `{__name__="up"}`,
		},
		{
			name: "metric isolation",
			objs: []*MetricAccess{isolated(newMA("team-a", "x", "up", "http_.*"))},
			// rewrite.NewPolicy merges branches differing in one label.
			want: `{__name__=~"(?:(?s:http_.*))|(?:up)",namespace="team-a"}`,
		},
		{
			name: "label selectors ANDed into every pattern",
			objs: []*MetricAccess{withLabels(newMA("a", "x", "up", `{job="api"}`), "env", "prod", "cluster", "c1")},
			want: `{__name__="up",cluster="c1",env="prod"} or {cluster="c1",env="prod",job="api"}`,
		},
		{
			name: "isolation and label selectors",
			objs: []*MetricAccess{isolated(withLabels(newMA("b", "x", "up"), "job", "api"))},
			want: `{__name__="up",job="api",namespace="b"}`,
		},
		{
			name: "isolation ANDs, never replaces: foreign namespace is dropped",
			objs: []*MetricAccess{isolated(newMA("a", "x", `up{namespace="other"}`, "down"))},
			want: `{__name__="down",namespace="a"}`,
		},
		{
			name: "label selector conflicting with pattern is dropped",
			objs: []*MetricAccess{withLabels(newMA("a", "x", `{job="web"}`, `{job="api",x="1"}`), "job", "api")},
			want: `{job="api",x="1"}`,
		},
		{
			name: "two objects combine",
			objs: []*MetricAccess{
				isolated(newMA("team-b", "http", "http_requests_total")),
				isolated(withLabels(newMA("team-b", "api", "process_resident_memory_bytes"), "job", "api")),
			},
			want: `{__name__="http_requests_total",namespace="team-b"} or {__name__="process_resident_memory_bytes",job="api",namespace="team-b"}`,
		},
		{
			name: "an object allowing nothing does not cancel another",
			objs: []*MetricAccess{
				isolated(newMA("a", "nothing", `{namespace="z"}`)),
				newMA("a", "up", "up"),
			},
			want: `{__name__="up"}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := CompileNamespace(tt.objs[0].Namespace, tt.objs)
			if err != nil {
				t.Fatal(err)
			}
			if got := p.String(); got != tt.want {
				t.Errorf("got  %s\nwant %s", got, tt.want)
			}
		})
	}
}

func TestCompileMatchEverything(t *testing.T) {
	p, err := CompileNamespace("a", []*MetricAccess{newMA("a", "x", `{}`, "up")})
	if err != nil {
		t.Fatal(err)
	}
	// {} contains {__name__="up"}: one branch without matchers remains.
	if b := p.Branches(); len(b) != 1 || len(b[0]) != 0 {
		t.Fatalf("got branches %v, want one empty selector", b)
	}
}

func TestCompileNamespaceErrors(t *testing.T) {
	t.Run("all contradictory", func(t *testing.T) {
		m := newMA("a", "x", `up{namespace="b"}`)
		m.Spec.MetricIsolation = true
		_, err := CompileNamespace("a", []*MetricAccess{m})
		wantErrContains(t, err, "namespace a")
	})
	t.Run("foreign object", func(t *testing.T) {
		_, err := CompileNamespace("a", []*MetricAccess{newMA("b", "x", "up")})
		wantErrContains(t, err, "b/x", `namespace "a"`)
	})
	t.Run("bad pattern", func(t *testing.T) {
		_, err := CompileNamespace("a", []*MetricAccess{newMA("a", "x", "up", "http_(")})
		wantErrContains(t, err, "a/x: spec.metrics[1]", `invalid regex "http_("`)
	})
	t.Run("no objects", func(t *testing.T) {
		if _, err := CompileNamespace("a", nil); err == nil {
			t.Fatal("want error for a namespace without objects")
		}
	})
}

// A pattern whose regex text cannot be spliced (an unterminated \Q) must
// compile, not panic: a panic here would take down the reload goroutine.
func TestCompileUnspliceableRegex(t *testing.T) {
	p, err := CompileNamespace("a", []*MetricAccess{newMA("a", "x", `app_.+\Qtotal`, "b+")})
	if err != nil {
		t.Fatal(err)
	}
	if p.Matches(labels.FromStrings("__name__", "app_xtotal)|(?:b")) {
		t.Errorf("policy %s matches a name neither pattern allows", p)
	}
}
