package e2e

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/restmapper"
	"sigs.k8s.io/yaml"

	"github.com/prom-tenant/caddy-prom-tenant/internal/testenv"
)

var metricAccesses = schema.GroupVersionResource{Group: "observability.ethos.io", Version: "v1alpha1", Resource: "metricaccesses"}

// kubeEnv is a real API server with the MetricAccess CRD installed.
type kubeEnv struct {
	api    *testenv.KubeAPIServer
	dyn    dynamic.Interface
	client kubernetes.Interface
}

func newKubeEnv(t *testing.T, api *testenv.KubeAPIServer) *kubeEnv {
	t.Helper()
	cfg := api.RESTConfig()
	e := &kubeEnv{api: api, dyn: dynamic.NewForConfigOrDie(cfg), client: kubernetes.NewForConfigOrDie(cfg)}
	crd := readObjects(t, "../deploy/kubernetes/crd/observability.ethos.io_metricaccesses.yaml")[0]
	crds := schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}
	if _, err := e.dyn.Resource(crds).Create(t.Context(), crd, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatalf("installing the CRD: %v", err)
	}
	eventually(t, "the CRD is served", 30*time.Second, func() bool {
		_, err := e.dyn.Resource(metricAccesses).List(t.Context(), metav1.ListOptions{})
		return err == nil
	})
	return e
}

func (e *kubeEnv) namespace(t *testing.T, name string) {
	t.Helper()
	_, err := e.client.CoreV1().Namespaces().Create(t.Context(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
}

func (e *kubeEnv) apply(t *testing.T, manifest string) {
	t.Helper()
	var u unstructured.Unstructured
	if err := yaml.Unmarshal([]byte(manifest), &u.Object); err != nil {
		t.Fatal(err)
	}
	res := e.dyn.Resource(metricAccesses).Namespace(u.GetNamespace())
	cur, err := res.Get(t.Context(), u.GetName(), metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		_, err = res.Create(t.Context(), &u, metav1.CreateOptions{})
	case err == nil:
		u.SetResourceVersion(cur.GetResourceVersion())
		_, err = res.Update(t.Context(), &u, metav1.UpdateOptions{})
	}
	if err != nil {
		t.Fatalf("applying %s/%s: %v", u.GetNamespace(), u.GetName(), err)
	}
}

// create creates the MetricAccess of manifest and returns the API server's answer.
func (e *kubeEnv) create(t *testing.T, manifest string) error {
	t.Helper()
	var u unstructured.Unstructured
	if err := yaml.Unmarshal([]byte(manifest), &u.Object); err != nil {
		t.Fatal(err)
	}
	_, err := e.dyn.Resource(metricAccesses).Namespace(u.GetNamespace()).Create(t.Context(), &u, metav1.CreateOptions{})
	return err
}

func (e *kubeEnv) readyCondition(t *testing.T, ns, name string) *metav1.Condition {
	t.Helper()
	ready, _ := e.conditions(t, ns, name)
	return ready
}

func eventually(t *testing.T, what string, within time.Duration, ok func() bool) {
	t.Helper()
	for deadline := time.Now().Add(within); !ok(); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, within)
		}
	}
}

func metricAccess(ns, name, metrics string) string {
	return "apiVersion: observability.ethos.io/v1alpha1\nkind: MetricAccess\nmetadata: {name: " + name + ", namespace: " + ns +
		"}\nspec: {metricIsolation: true, metrics: " + metrics + "}\n"
}

// TestTenantsFollowKubernetes drives MetricAccess objects through a real API
// server and watches bin/caddy follow: tenants appear, change and disappear,
// invalid objects are marked so in their status, and an API server restart
// loses nothing.
func TestTenantsFollowKubernetes(t *testing.T) {
	e := newKubeEnv(t, testenv.StartKubeAPIServer(t)) // its own: it restarts it
	e.namespace(t, "team-a")
	p := startProxyWith(t, testenv.SharedPrometheus(t), "kubernetes {\n\t\t\tkubeconfig "+e.api.Kubeconfig+"\n\t\t\tnamespaces team-a team-b\n\t\t}", "")
	count := func(query string) (int, string) {
		status, env, _ := do(t, request(t, "GET", p.url+"/api/v1/query?query="+query, "team-a", ""))
		return status, string(env.Data)
	}
	if s, _ := count("count(up)"); s != 403 {
		t.Fatalf("team-a before any MetricAccess: %d, want 403", s)
	}

	e.apply(t, metricAccess("team-a", "app", "[up]"))
	eventually(t, "team-a appears", 10*time.Second, func() bool { s, d := count("count(up)"); return s == 200 && strings.Contains(d, `"4"`) })
	eventually(t, "Ready=True on team-a/app", 10*time.Second, func() bool {
		c := e.readyCondition(t, "team-a", "app")
		return c != nil && c.Status == metav1.ConditionTrue
	})

	e.apply(t, metricAccess("team-a", "app", "[http_requests_total]"))
	eventually(t, "team-a's policy changes", 10*time.Second, func() bool { _, d := count("count(up)"); return strings.Contains(d, `"result":[]`) })

	e.apply(t, metricAccess("team-a", "bad", `["http_("]`))
	eventually(t, "Invalid condition on team-a/bad", 10*time.Second, func() bool {
		c := e.readyCondition(t, "team-a", "bad")
		return c != nil && c.Status == metav1.ConditionFalse && c.Reason == "Invalid" && strings.Contains(c.Message, "http_(")
	})
	if s, _ := count("count(http_requests_total)"); s != 200 {
		t.Errorf("an invalid object took team-a down: %d", s)
	}

	// The API server goes away and comes back: the tenants stay in force
	// meanwhile, and changes made after it returns are followed.
	e.api.Restart(t)
	if s, _ := count("count(http_requests_total)"); s != 200 {
		t.Errorf("team-a during the API server restart: %d", s)
	}
	e.apply(t, metricAccess("team-a", "app", "[up]"))
	eventually(t, "a change after the restart", 30*time.Second, func() bool { _, d := count("count(up)"); return strings.Contains(d, `"4"`) })

	if err := e.dyn.Resource(metricAccesses).Namespace("team-a").Delete(t.Context(), "app", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "team-a disappears", 10*time.Second, func() bool { s, _ := count("count(up)"); return s == 403 })
}

// TestManifestsApply server-side dry-runs every shipped manifest and example
// MetricAccess against the real API server (kubectl apply --dry-run=server).
func TestManifestsApply(t *testing.T) {
	e := newKubeEnv(t, testenv.SharedKubeAPIServer(t))
	disco := e.client.Discovery()
	mapper := restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(disco))
	files, _ := filepath.Glob("../deploy/kubernetes/*.yaml")
	examples, _ := filepath.Glob("../examples/tenants/*.yaml")
	variants, _ := filepath.Glob("../examples/kubernetes-header-trusting/*.yaml")
	examples = append(examples, variants...)
	thanos, _ := filepath.Glob("../examples/thanos/*.yaml")
	examples = append(examples, thanos...)
	if len(files) < 4 || len(examples) == 0 {
		t.Fatalf("manifests: %v, examples: %v", files, examples)
	}
	e.namespace(t, "prom-tenant") // namespace.yaml's, which the others need for real
	for _, f := range append(files, examples...) {
		e.dryRun(t, mapper, f, readObjects(t, f))
	}
}

// dryRun creates each object with a strict server-side dry run (as kubectl
// apply --dry-run=server --validate=strict), after creating for real the
// namespaces they live in.
func (e *kubeEnv) dryRun(t *testing.T, mapper meta.RESTMapper, src string, objs []*unstructured.Unstructured) {
	t.Helper()
	for _, u := range objs {
		gvk := u.GroupVersionKind()
		m, err := mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
		if err != nil {
			t.Fatalf("%s: %s: %v", src, gvk, err)
		}
		var res dynamic.ResourceInterface = e.dyn.Resource(m.Resource)
		if m.Scope.Name() == meta.RESTScopeNameNamespace {
			e.namespace(t, u.GetNamespace())
			res = e.dyn.Resource(m.Resource).Namespace(u.GetNamespace())
		}
		if u.GetKind() == "Namespace" {
			e.namespace(t, u.GetName()) // the namespaced objects after it need it for real
			continue
		}
		if _, err := res.Create(context.Background(), u, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}, FieldValidation: "Strict"}); err != nil {
			t.Errorf("%s: %s %s/%s does not apply: %v", src, gvk.Kind, u.GetNamespace(), u.GetName(), err)
		}
	}
}

// readObjects reads every object of a multi-document YAML file.
func readObjects(t *testing.T, path string) []*unstructured.Unstructured {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return parseObjects(t, path, raw)
}

// parseObjects reads every object of a multi-document YAML stream.
func parseObjects(t *testing.T, path string, raw []byte) []*unstructured.Unstructured {
	t.Helper()
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(raw)))
	var out []*unstructured.Unstructured
	for {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		var u unstructured.Unstructured
		if err := yaml.Unmarshal(doc, &u.Object); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if len(u.Object) > 0 {
			out = append(out, &u)
		}
	}
}

// TestKubernetesTenantsSurviveReload reloads the config under a stream of
// queries: the watch is shared across configs, so no request may find the
// tenant missing while the new config takes over.
func TestKubernetesTenantsSurviveReload(t *testing.T) {
	e := newKubeEnv(t, testenv.SharedKubeAPIServer(t))
	e.namespace(t, "team-b")
	e.apply(t, metricAccess("team-b", "reload", "[up]"))
	p := startProxyWith(t, testenv.SharedPrometheus(t), "kubernetes {\n\t\t\tkubeconfig "+e.api.Kubeconfig+"\n\t\t}", "")
	query := func() int {
		status, _, _ := do(t, request(t, "GET", p.url+"/api/v1/query?query=count(up)", "team-b", ""))
		return status
	}
	eventually(t, "team-b appears", 10*time.Second, func() bool { return query() == 200 })

	// Fresh connections: a reload closes idle keep-alive ones, which a pooled
	// client could misread as the proxy failing.
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	stop := make(chan struct{})
	statuses := make(chan string, 100000)
	var transportErrors atomic.Int64
	go func() {
		defer close(statuses)
		for {
			select {
			case <-stop:
				return
			default:
			}
			var resp *http.Response
			var err error
			for try := 0; try < 2; try++ { // Caddy may close a connection it accepted while retiring the old config
				req, _ := http.NewRequest("GET", p.url+"/api/v1/query?query=count(up)", nil)
				req.Header.Set("X-Tenant-Namespace", "team-b")
				if resp, err = client.Do(req); err == nil {
					break
				}
				transportErrors.Add(1)
			}
			if err != nil {
				statuses <- err.Error()
				continue
			}
			resp.Body.Close()
			statuses <- resp.Status
		}
	}()
	for i := range 3 {
		// A different config each time (Caddy skips a reload to the same one).
		extra := fmt.Sprintf("\nhttp://127.0.0.1:%d {\n\trespond \"reload %d\"\n}\n", testenv.FreePort(t), i)
		p.caddy.Reload(t, p.caddyfile+extra)
	}
	time.Sleep(200 * time.Millisecond)
	close(stop)
	n := 0
	for s := range statuses {
		n++
		if s != "200 OK" {
			t.Fatalf("request %d during the reloads: %s", n, s)
		}
	}
	t.Logf("%d requests across 3 reloads, all answered 200 (%d connections closed by Caddy's reload, retried)", n, transportErrors.Load())
}
