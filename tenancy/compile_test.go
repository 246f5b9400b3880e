package tenancy

import (
	"testing"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/prom-tenant/caddy-prom-tenant/tenancy/v1alpha1"
)

func TestCompileNamespace(t *testing.T) {
	withLabels := func(m *v1alpha1.MetricAccess, kv ...string) *v1alpha1.MetricAccess {
		m.Spec.LabelSelectors = map[string]string{}
		for i := 0; i < len(kv); i += 2 {
			m.Spec.LabelSelectors[kv[i]] = kv[i+1]
		}
		return m
	}
	isolated := func(m *v1alpha1.MetricAccess) *v1alpha1.MetricAccess {
		m.Spec.MetricIsolation = true
		return m
	}
	tests := []struct {
		name string
		objs []*v1alpha1.MetricAccess
		want string
	}{
		{
			name: "metric name",
			objs: []*v1alpha1.MetricAccess{newMA("a", "x", "up")},
			want: `{__name__="up"}`,
		},
		{
			name: "metric isolation",
			objs: []*v1alpha1.MetricAccess{isolated(newMA("team-a", "x", "up", "http_.*"))},
			// rewrite.NewPolicy merges branches differing in one label.
			want: `{__name__=~"(?:(?s:http_.*))|(?:up)",namespace="team-a"}`,
		},
		{
			name: "label selectors ANDed into every pattern",
			objs: []*v1alpha1.MetricAccess{withLabels(newMA("a", "x", "up", `{job="api"}`), "env", "prod", "cluster", "c1")},
			want: `{__name__="up",cluster="c1",env="prod"} or {cluster="c1",env="prod",job="api"}`,
		},
		{
			name: "isolation and label selectors",
			objs: []*v1alpha1.MetricAccess{isolated(withLabels(newMA("b", "x", "up"), "job", "api"))},
			want: `{__name__="up",job="api",namespace="b"}`,
		},
		{
			name: "isolation ANDs, never replaces: foreign namespace is dropped",
			objs: []*v1alpha1.MetricAccess{isolated(newMA("a", "x", `up{namespace="other"}`, "down"))},
			want: `{__name__="down",namespace="a"}`,
		},
		{
			name: "label selector conflicting with pattern is dropped",
			objs: []*v1alpha1.MetricAccess{withLabels(newMA("a", "x", `{job="web"}`, `{job="api",x="1"}`), "job", "api")},
			want: `{job="api",x="1"}`,
		},
		{
			name: "two objects combine",
			objs: []*v1alpha1.MetricAccess{
				isolated(newMA("team-b", "http", "http_requests_total")),
				isolated(withLabels(newMA("team-b", "api", "process_resident_memory_bytes"), "job", "api")),
			},
			want: `{__name__="http_requests_total",namespace="team-b"} or {__name__="process_resident_memory_bytes",job="api",namespace="team-b"}`,
		},
		{
			name: "an object allowing nothing does not cancel another",
			objs: []*v1alpha1.MetricAccess{
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
	p, err := CompileNamespace("a", []*v1alpha1.MetricAccess{newMA("a", "x", `{}`, "up")})
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
		_, err := CompileNamespace("a", []*v1alpha1.MetricAccess{m})
		wantErrContains(t, err, "namespace a")
	})
	t.Run("foreign object", func(t *testing.T) {
		_, err := CompileNamespace("a", []*v1alpha1.MetricAccess{newMA("b", "x", "up")})
		wantErrContains(t, err, "b/x", `namespace "a"`)
	})
	t.Run("bad pattern", func(t *testing.T) {
		_, err := CompileNamespace("a", []*v1alpha1.MetricAccess{newMA("a", "x", "up", "http_(")})
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
	p, err := CompileNamespace("a", []*v1alpha1.MetricAccess{newMA("a", "x", `app_.+\Qtotal`, "b+")})
	if err != nil {
		t.Fatal(err)
	}
	if p.Matches(labels.FromStrings("__name__", "app_xtotal)|(?:b")) {
		t.Errorf("policy %s matches a name neither pattern allows", p)
	}
}
