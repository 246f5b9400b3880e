package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"

	"github.com/prom-tenant/caddy-prom-tenant/internal/testenv"
)

// TestOriginalSchemaKubernetes applies the original proxy's MetricAccess
// objects (tenancy/testdata/original: its README's examples with every
// field, target type and pattern form) as they are to a real kube-apiserver
// with the generated CRD: each passes a strict server-side dry-run, is
// stored, and bin/caddy puts it in force (Ready=True). The objects with a
// regex-like = value carry a Warning condition saying they are read
// literally, and the admin API says the same. Objects with a missing,
// unknown or contradicting target.type (tenancy/testdata/original-invalid)
// are stored too, and their Ready condition names the object and field.
// On a real Prometheus, the original's '{__name__="up",instance=".*"}' alone
// allows no up series, where the same pattern with =~ allows them all.
// The tenancy package loads the same files from a directory.
func TestOriginalSchemaKubernetes(t *testing.T) {
	e := newKubeEnv(t, testenv.SharedKubeAPIServer(t))
	valid, _ := filepath.Glob("../tenancy/testdata/original/*.yaml")
	invalid, _ := filepath.Glob("../tenancy/testdata/original-invalid/*.yaml")
	if len(valid) < 7 || len(invalid) < 5 {
		t.Fatalf("fixtures: %v %v", valid, invalid)
	}
	type object struct{ ns, name string }
	var (
		objects    []object
		namespaces []string
		wantErr    = map[object]string{} // the Ready message of an invalid object
	)
	for _, f := range append(valid, invalid...) {
		for _, u := range readObjects(t, f) {
			o := object{u.GetNamespace(), u.GetName()}
			objects = append(objects, o)
			if !slices.Contains(namespaces, o.ns) {
				namespaces = append(namespaces, o.ns)
				e.namespace(t, o.ns)
			}
			res := e.dyn.Resource(metricAccesses).Namespace(o.ns)
			if _, err := res.Create(t.Context(), u.DeepCopy(), metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}, FieldValidation: "Strict"}); err != nil {
				t.Errorf("%s: strict server-side dry-run: %v", f, err)
			}
			if _, err := res.Create(t.Context(), u, metav1.CreateOptions{FieldValidation: "Strict"}); err != nil && !apierrors.IsAlreadyExists(err) {
				t.Fatalf("%s: %v", f, err)
			}
			if slices.Contains(invalid, f) {
				wantErr[o] = strings.Join(wantLines(t, f), "\n")
			}
		}
	}

	// The original's "up from any instance" alone, as written and as =~.
	for ns, op := range map[string]string{"literal-reading": "=", "regex-reading": "=~"} {
		e.namespace(t, ns)
		e.apply(t, "apiVersion: observability.ethos.io/v1alpha1\nkind: MetricAccess\nmetadata: {name: up-any, namespace: "+ns+
			"}\nspec: {metrics: ['{__name__=\"up\",instance"+op+"\".*\"}']}\n")
		objects = append(objects, object{ns, "up-any"})
		namespaces = append(namespaces, ns)
	}
	warned := map[object]bool{{"tenant-namespace", "tenant-metrics-access"}: true, {"pattern-tenant", "pattern-types"}: true,
		{"literal-reading", "up-any"}: true}

	p := startProxyWith(t, testenv.SharedPrometheus(t), "kubernetes {\n\t\t\tkubeconfig "+e.api.Kubeconfig+
		"\n\t\t\tnamespaces "+strings.Join(namespaces, " ")+"\n\t\t}", "")

	for _, o := range objects {
		var ready, warning *metav1.Condition
		eventually(t, o.ns+"/"+o.name+": its conditions", 15*time.Second, func() bool {
			ready, warning = e.conditions(t, o.ns, o.name)
			return ready != nil && ready.ObservedGeneration > 0 && (warning != nil) == warned[o]
		})
		if msg, bad := wantErr[o]; bad {
			if ready.Status != metav1.ConditionFalse || ready.Reason != "Invalid" || ready.Message != msg {
				t.Errorf("%s/%s: Ready %s %s %q, want False Invalid %q", o.ns, o.name, ready.Status, ready.Reason, ready.Message, msg)
			}
			continue
		}
		if ready.Status != metav1.ConditionTrue || ready.Reason != "Accepted" {
			t.Errorf("%s/%s: Ready %s %s %q, want True Accepted", o.ns, o.name, ready.Status, ready.Reason, ready.Message)
		}
		if warned[o] && (warning.Status != metav1.ConditionTrue || warning.Reason != "RegexLikeEquality" ||
			!strings.Contains(warning.Message, `instance=".*" is read literally, as PromQL reads =: it matches only the text ".*"; for a regular expression write instance=~".*"`)) {
			t.Errorf("%s/%s: Warning %s %s %q, want the literal reading of instance", o.ns, o.name, warning.Status, warning.Reason, warning.Message)
		}
	}

	// The admin API says which reading is in force, and on which objects.
	var view struct {
		EqualityMatchers string `json:"equality_matchers"`
		Tenants          []struct {
			Namespace string `json:"namespace"`
			InForce   bool   `json:"in_force"`
			Objects   []struct {
				Name     string   `json:"name"`
				InForce  bool     `json:"in_force"`
				Reason   string   `json:"reason"`
				Warnings []string `json:"warnings"`
			} `json:"objects"`
		} `json:"tenants"`
	}
	adminGet(t, p.caddy.AdminURL+"/prom_tenant/tenants", &view)
	if !strings.HasPrefix(view.EqualityMatchers, "literal, as in PromQL") || !strings.Contains(view.EqualityMatchers, `name=~"value"`) {
		t.Errorf("equality_matchers %q: want the literal reading and how to write a regex", view.EqualityMatchers)
	}
	seen := 0
	for _, tn := range view.Tenants {
		for _, ob := range tn.Objects {
			o := object{tn.Namespace, ob.Name}
			seen++
			_, bad := wantErr[o]
			if ob.InForce == bad || bad && ob.Reason != "Invalid" || (len(ob.Warnings) > 0) != warned[o] {
				t.Errorf("admin: %s/%s in force %v, reason %q, warnings %q", o.ns, o.name, ob.InForce, ob.Reason, ob.Warnings)
			}
		}
	}
	if seen != len(objects) {
		t.Errorf("admin lists %d objects, want %d", seen, len(objects))
	}

	// What the original's comments say, on a real Prometheus: the debug
	// tenant sees every "up" of the cluster.
	direct := queryResult(t, p.prom.URL+"/api/v1/query?query=count(up)", "")
	if direct == "" {
		t.Fatal("the shared Prometheus has no up series")
	}
	if got := queryResult(t, p.url+"/api/v1/query?query=count(up)", "debug-tenant"); got != direct {
		t.Errorf("debug-tenant count(up) = %s, want all of the cluster's, %s", got, direct)
	}
	// '{__name__="up",instance=".*"}' alone is read literally: no up series
	// (none has the instance ".*"), where the regex allows them all.
	if got := queryResult(t, p.url+"/api/v1/query?query=count(up)", "literal-reading"); got != "" {
		t.Errorf(`literal-reading count(up) = %s, want none: instance=".*" is read literally`, got)
	}
	if got := queryResult(t, p.url+"/api/v1/query?query=count(up)", "regex-reading"); got != direct {
		t.Errorf(`regex-reading count(up) = %s, want all, %s: instance=~".*" is a regex`, got, direct)
	}
}

// conditions returns an object's Ready and Warning conditions.
func (e *kubeEnv) conditions(t *testing.T, ns, name string) (ready, warning *metav1.Condition) {
	t.Helper()
	u, err := e.dyn.Resource(metricAccesses).Namespace(ns).Get(t.Context(), name, metav1.GetOptions{})
	if err != nil {
		return nil, nil
	}
	raw, _, _ := unstructured.NestedSlice(u.Object, "status", "conditions")
	var conds []metav1.Condition
	for _, c := range raw {
		b, _ := yaml.Marshal(c)
		var cond metav1.Condition
		if yaml.Unmarshal(b, &cond) == nil {
			conds = append(conds, cond)
		}
	}
	return meta.FindStatusCondition(conds, "Ready"), meta.FindStatusCondition(conds, "Warning")
}

// wantLines returns the "# want: " lines of a fixture.
func wantLines(t *testing.T, path string) []string {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	sc := bufio.NewScanner(bytes.NewReader(raw))
	for sc.Scan() {
		if w, ok := strings.CutPrefix(sc.Text(), "# want: "); ok {
			out = append(out, w)
		}
	}
	if len(out) == 0 {
		t.Fatalf("%s: no # want: line", path)
	}
	return out
}

// queryResult returns the samples of an instant query, asked as tenant
// (none: directly), as "labels value" lines without timestamps.
func queryResult(t *testing.T, target, tenant string) string {
	t.Helper()
	status, env, _ := do(t, request(t, http.MethodGet, target, tenant, ""))
	if status != http.StatusOK {
		t.Fatalf("GET %s as %q: %d %s", target, tenant, status, env.Error)
	}
	var data struct {
		Result []struct {
			Metric map[string]string `json:"metric"`
			Value  [2]any            `json:"value"`
		} `json:"result"`
	}
	if err := json.Unmarshal(env.Data, &data); err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, r := range data.Result {
		m, _ := json.Marshal(r.Metric)
		lines = append(lines, fmt.Sprintf("%s %v", m, r.Value[1]))
	}
	slices.Sort(lines)
	return strings.Join(lines, "\n")
}
