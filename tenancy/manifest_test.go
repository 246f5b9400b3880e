package tenancy

import (
	"strings"
	"testing"
)

const teamB = `# comment before the first document
---
apiVersion: observability.ethos.io/v1alpha1
kind: MetricAccess
metadata:
  name: http
  namespace: team-b
spec:
  metricIsolation: true
  metrics:
    - http_requests_total
--- # an empty document follows
# only a comment
---
apiVersion: observability.ethos.io/v1alpha1
kind: MetricAccess
metadata:
  name: api-process
  namespace: team-b
spec:
  labelSelectors:
    job: api
  metrics: ["up", "{job=\"x\"}"]
---
`

func TestParseManifestsMultiDocument(t *testing.T) {
	objs, err := parseManifests("b.yaml", []byte(teamB))
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, o := range objs {
		keys = append(keys, o.Key())
	}
	if got := strings.Join(keys, " "); got != "team-b/http team-b/api-process" {
		t.Fatalf("got objects %q", got)
	}
	if !objs[0].Spec.MetricIsolation || objs[1].Spec.LabelSelectors["job"] != "api" || objs[1].Spec.Metrics[1] != `{job="x"}` {
		t.Errorf("fields not decoded: %+v %+v", objs[0].Spec, objs[1].Spec)
	}
}

func TestParseManifestsEmptyFile(t *testing.T) {
	for _, in := range []string{"", "\n", "# nothing\n", "---\n---\n"} {
		objs, err := parseManifests("e.yaml", []byte(in))
		if err != nil || len(objs) != 0 {
			t.Errorf("%q: got %v, %v; want no objects and no error", in, objs, err)
		}
	}
}

const header = "apiVersion: observability.ethos.io/v1alpha1\nkind: MetricAccess\n"

func TestParseManifestsErrors(t *testing.T) {
	good := header + "metadata: {name: good, namespace: team-a}\nspec: {metrics: [up]}\n"
	tests := []struct {
		name string
		doc  string
		want []string
	}{
		{"unknown spec field", header + "metadata: {name: x, namespace: team-a}\nspec:\n  metrics: [up]\n  metricsIsolation: true\n",
			[]string{"f.yaml: document 2: team-a/x:", `unknown field "spec.metricsIsolation"`}},
		{"unknown nested fields", header + "metadata: {name: x, namespace: team-a, labelz: {}}\nspec:\n  metrics: [up]\n  remoteWrite:\n    target:\n      type: prometheus\n      prometheus: {servicename: p, servicePort: 1}\n",
			[]string{`team-a/x: unknown field "metadata.labelz"`, `team-a/x: unknown field "spec.remoteWrite.target.prometheus.servicename"`}},
		{"unknown top-level field", header + "metadata: {name: x, namespace: team-a}\nspecs: {}\n",
			[]string{"f.yaml: document 2: team-a/x:", `unknown field "specs"`}},
		{"wrong kind", "apiVersion: observability.ethos.io/v1alpha1\nkind: MetricAcces\nmetadata: {name: x, namespace: team-a}\nspec: {metrics: [up]}\n",
			[]string{`f.yaml: document 2: team-a/x: kind: must be "MetricAccess", got "MetricAcces"`}},
		{"missing namespace", header + "metadata: {name: x}\nspec: {metrics: [up]}\n",
			[]string{"f.yaml: document 2: <no namespace>/x: metadata.namespace: required"}},
		{"bad regex", header + "metadata: {name: x, namespace: team-a}\nspec: {metrics: [up, 'http_(']}\n",
			[]string{`f.yaml: document 2: team-a/x: spec.metrics[1]: invalid regex "http_("`}},
		{"wrong type", header + "metadata: {name: x, namespace: team-a}\nspec: {metrics: up}\n",
			[]string{"f.yaml: document 2: team-a/x:", "spec.metrics"}},
		{"invalid YAML", header + "metadata: {name: x\n", []string{"f.yaml: document 2: invalid YAML"}},
		{"duplicate in file", good, []string{"f.yaml: document 2: team-a/good: already defined in document 1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			objs, err := parseManifests("f.yaml", []byte(good+"---\n"+tt.doc))
			wantErrContains(t, err, tt.want...)
			if objs != nil {
				t.Errorf("a broken file must yield no objects, got %d", len(objs))
			}
		})
	}
}

func TestParseManifestsReportsEveryDocument(t *testing.T) {
	in := header + "metadata: {name: a, namespace: ns}\nspec: {metrics: ['(']}\n---\n" +
		header + "metadata: {name: b, namespace: ns}\nspec: {metrics: []}\n"
	_, err := parseManifests("f.yaml", []byte(in))
	wantErrContains(t, err, "document 1: ns/a: spec.metrics[0]", "document 2: ns/b: spec.metrics: at least one")
}
