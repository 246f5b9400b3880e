package promtenant

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/caddyserver/caddy/v2"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/prom-tenant/caddy-prom-tenant/internal/doccheck"
	"github.com/prom-tenant/caddy-prom-tenant/tenancy"
	"github.com/prom-tenant/caddy-prom-tenant/tenancy/v1alpha1"
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
	for _, tc := range refusalCases(t) {
		t.Run(tc.name, func(t *testing.T) {
			w := serveRefusal(t, h, tc)
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
	obj := func(spec v1alpha1.MetricAccessSpec) *v1alpha1.MetricAccess {
		return &v1alpha1.MetricAccess{
			TypeMeta:   metav1.TypeMeta{APIVersion: v1alpha1.APIVersion, Kind: v1alpha1.Kind},
			ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: "app"},
			Spec:       spec,
		}
	}
	obj0 := func(p string) *v1alpha1.MetricAccess { return obj(v1alpha1.MetricAccessSpec{Metrics: []string{p}}) }
	rw := func(t *v1alpha1.RemoteWriteTargetSpec) *v1alpha1.MetricAccess {
		return obj(v1alpha1.MetricAccessSpec{Metrics: []string{"up"}, RemoteWrite: &v1alpha1.RemoteWriteSpec{Enabled: true, Target: t}})
	}
	prom := &v1alpha1.PrometheusTarget{ServiceName: "prometheus", ServicePort: 9090}
	pgw := &v1alpha1.PushgatewayTarget{ServiceName: "pushgateway", ServicePort: 9091, JobName: "copy"}
	for _, tc := range []struct {
		name string
		obj  *v1alpha1.MetricAccess
		vars []placeholder
	}{
		{"no patterns", obj(v1alpha1.MetricAccessSpec{}), nil},
		{"too many patterns", obj(v1alpha1.MetricAccessSpec{Metrics: slices.Repeat([]string{"up"}, v1alpha1.MaxPatternsPerObject+1)}),
			[]placeholder{{`257 patterns`, `<n> patterns`}}},
		{"bad regex", obj0("http_(.*"), []placeholder{{`"http_\(\.\*": .*`, `"<pattern>": <reason>`}, {`\[0\]`, `[<i>]`}}},
		{"bad selector", obj0(`{job="api"`), []placeholder{{`"\{job=\\"api\\"": .*`, `"<pattern>": <reason>`}, {`\[0\]`, `[<i>]`}}},
		{"whitespace", obj0("up "), []placeholder{{`"up "`, `"<pattern>"`}, {`\[0\]`, `[<i>]`}}},
		{"bad label name", obj(v1alpha1.MetricAccessSpec{Metrics: []string{"up"}, LabelSelectors: map[string]string{"app.kubernetes.io/name": "x"}}),
			[]placeholder{{`"app.kubernetes.io/name"`, `"<name>"`}}},
		{"no target", rw(nil), nil},
		{"no target type", rw(&v1alpha1.RemoteWriteTargetSpec{Prometheus: prom}), nil},
		{"unknown target type", rw(&v1alpha1.RemoteWriteTargetSpec{Type: "remoteWrite", RemoteWrite: &v1alpha1.RemoteWriteTarget{URL: "https://x/"}}), nil},
		{"another type's block", rw(&v1alpha1.RemoteWriteTargetSpec{Type: "prometheus", Prometheus: prom, Pushgateway: pgw}), nil},
		{"no block of the type", rw(&v1alpha1.RemoteWriteTargetSpec{Type: "pushgateway"}), nil},
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
	manifest := "apiVersion: " + v1alpha1.APIVersion + "\nkind: " + v1alpha1.Kind +
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
	m := &v1alpha1.MetricAccess{Spec: v1alpha1.MetricAccessSpec{
		Metrics: []string{"http_requests_total", "http_.*", `{job="my-app"}`, `{__name__="up",instance=".*"}`}}}
	w := m.EqualityWarnings()
	if len(w) != 1 {
		t.Fatalf("warnings %q, want one, for instance", w)
	}
	doccheck.Shows(t, doc, w[0])
}
