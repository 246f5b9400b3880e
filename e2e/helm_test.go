package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	authnv1 "k8s.io/api/authentication/v1"
	authzv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/restmapper"

	"github.com/prom-tenant/caddy-prom-tenant/internal/testenv"
)

// TestChartApplies renders the Helm chart (deploy/helm/prom-tenant) with its
// default values and each ci/*.yaml and server-side dry-runs every object
// against the real API server, strictly: what `helm install` would send
// after the CRD. The CRD is installed first (newKubeEnv, from
// deploy/kubernetes/crd: make verify-generate keeps the chart's crds/ copy
// identical), the release namespace and the tenants' namespaces are created.
func TestChartApplies(t *testing.T) {
	helm := testenv.HelmBinary(t)
	e := newKubeEnv(t, testenv.SharedKubeAPIServer(t))
	mapper := restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(e.client.Discovery()))
	chart := filepath.Join(testenv.RepoRoot(), "deploy", "helm", "prom-tenant")
	values, _ := filepath.Glob(filepath.Join(chart, "ci", "*.yaml"))
	if len(values) < 3 {
		t.Fatalf("values files: %v", values)
	}
	for _, v := range append([]string{""}, values...) {
		args := []string{"template", "prom-tenant", chart, "--namespace", "prom-tenant"}
		if v != "" {
			args = append(args, "--values", v)
		}
		out, err := exec.Command(helm, args...).Output()
		if err != nil {
			t.Fatalf("helm %v: %v %s", args, err, stderrOf(err))
		}
		name := "helm template (defaults)"
		if v != "" {
			name = "helm template -f " + filepath.Base(v)
		}
		objs := parseObjects(t, name, out)
		if len(objs) < 5 {
			t.Fatalf("%s rendered %d objects", name, len(objs))
		}
		e.dryRun(t, mapper, name, objs)
	}
}

func stderrOf(err error) string {
	if ee, ok := err.(*exec.ExitError); ok {
		return string(ee.Stderr)
	}
	return ""
}

// chartProxy is bin/caddy running a Caddyfile the chart rendered, as the
// chart's ServiceAccount with the chart's RBAC created for real.
type chartProxy struct {
	url    string // the proxy site
	health string // the probes' site
	caddy  *testenv.Caddy
}

// startChart renders the chart as release prom-tenant in namespace ns with
// the values file (none for "") and --set flags, creates its ServiceAccount
// and RBAC on e's API server (the namespaces they live in first), and runs
// its Caddyfile on bin/caddy with that ServiceAccount's token. What only a
// pod gives is replaced: the in-cluster configuration by a kubeconfig
// holding the token the kubelet would mount, and the listen ports by free
// ports on 127.0.0.1.
func startChart(t *testing.T, e *kubeEnv, ns, values string, set ...string) *chartProxy {
	t.Helper()
	return startChartReplicas(t, e, 1, ns, values, set...)[0]
}

// startChartReplicas is startChart with n replicas: n bin/caddy processes
// of the same Caddyfile, each with its own ports and, when the Caddyfile
// elects copiers, the leader-election identity replica-<i> (a pod's would be
// its name).
func startChartReplicas(t *testing.T, e *kubeEnv, n int, ns, values string, set ...string) []*chartProxy {
	t.Helper()
	ctx := t.Context()
	mapper := restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(e.client.Discovery()))
	args := []string{"template", "prom-tenant", filepath.Join(testenv.RepoRoot(), "deploy", "helm", "prom-tenant"), "--namespace", ns}
	if values != "" {
		args = append(args, "--values", filepath.Join(testenv.RepoRoot(), "deploy", "helm", "prom-tenant", "ci", values))
	}
	for _, s := range set {
		args = append(args, "--set", s)
	}
	out, err := exec.Command(testenv.HelmBinary(t), args...).Output()
	if err != nil {
		t.Fatalf("helm %v: %v %s", args, err, stderrOf(err))
	}
	var caddyfile string
	for _, u := range parseObjects(t, "helm template", out) {
		switch u.GetKind() {
		case "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding":
			gvk := u.GroupVersionKind()
			m, err := mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
			if err != nil {
				t.Fatal(err)
			}
			var res dynamic.ResourceInterface = e.dyn.Resource(m.Resource)
			if m.Scope.Name() == meta.RESTScopeNameNamespace {
				e.namespace(t, u.GetNamespace())
				res = e.dyn.Resource(m.Resource).Namespace(u.GetNamespace())
			}
			if _, err := res.Create(ctx, u, metav1.CreateOptions{FieldValidation: "Strict"}); err != nil {
				t.Fatalf("%s %s: %v", u.GetKind(), u.GetName(), err)
			}
		case "ConfigMap":
			if u.GetName() == "prom-tenant-config" {
				caddyfile, _, _ = unstructured.NestedString(u.Object, "data", "Caddyfile")
			}
		}
	}

	tr, err := e.client.CoreV1().ServiceAccounts(ns).CreateToken(ctx, "prom-tenant", &authnv1.TokenRequest{}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(kubeconfig, fmt.Appendf(nil, `apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: %q, certificate-authority: %q}}]
users: [{name: prom-tenant, user: {token: %q}}]
contexts: [{name: c, context: {cluster: c, user: prom-tenant}}]
current-context: c
`, e.api.URL, e.api.CAFile, tr.Status.Token), 0o600); err != nil {
		t.Fatal(err)
	}
	inCluster := "kubernetes {\n\t\t\tkubeconfig " + kubeconfig + "\n\t\t}\n"
	chartCaddyfile := caddyfile
	var proxies []*chartProxy
	for i := range n {
		caddyfile := strings.Replace(chartCaddyfile, "\t\tleader_election {\n", fmt.Sprintf("\t\tleader_election {\n\t\t\tidentity replica-%d\n", i), 1)
		proxies = append(proxies, startChartReplica(t, caddyfile, inCluster, kubeconfig))
	}
	return proxies
}

// startChartReplica runs the chart's caddyfile with kubeconfig for the
// in-cluster configuration and free ports on 127.0.0.1.
func startChartReplica(t *testing.T, caddyfile, inCluster, kubeconfig string) *chartProxy {
	t.Helper()
	port, health := freePort(t), freePort(t)
	local := []struct {
		from, to string
		n        int // how often the chart writes it; 0: once or not at all
	}{
		{"\tadmin localhost:2019\n", fmt.Sprintf("\tadmin 127.0.0.1:%d\n", freePort(t)), 1},
		{"\n:8080 {\n", fmt.Sprintf("\nhttp://127.0.0.1:%d {\n", health), 1},
		{"\n:9091 {\n", fmt.Sprintf("\nhttp://127.0.0.1:%d {\n", port), 1},
		{"\t\tkubernetes\n\t}\n", "\t\t" + inCluster + "\t}\n", 0}, // prom_tenancy's, all namespaces
		{"\t\tkubernetes {\n\t\t\tnamespaces ", "\t\tkubernetes {\n\t\t\tkubeconfig " + kubeconfig + "\n\t\t\tnamespaces ", 0},
		{"\t\tkubernetes\n\t\t# Leases and progress", "\t\t" + inCluster + "\t\t# Leases and progress", 0}, // prom_remote_write's
		{"\tauthenticate_kubernetes {\n", "\tauthenticate_kubernetes {\n\t\tkubeconfig " + kubeconfig + "\n", 0},
		{"\t\tdynamic kubernetes {\n", "\t\tdynamic kubernetes {\n\t\t\tkubeconfig " + kubeconfig + "\n", 0},
	}
	for _, r := range local {
		if n := strings.Count(caddyfile, r.from); n > 1 || (r.n == 1 && n != 1) {
			t.Fatalf("the chart's Caddyfile has %d of %q:\n%s", n, r.from, caddyfile)
		}
		caddyfile = strings.Replace(caddyfile, r.from, r.to, 1)
	}
	blocks := regexp.MustCompile(`(?m)^\t*(authenticate_kubernetes|kubernetes|dynamic kubernetes)( \{)?$`)
	if n := len(regexp.MustCompile(`(?m)^\t*kubeconfig `).FindAllString(caddyfile, -1)); n != len(blocks.FindAllString(caddyfile, -1)) {
		t.Fatalf("a kubernetes block of the chart's Caddyfile would use the in-cluster configuration:\n%s", caddyfile)
	}
	c := testenv.StartCaddy(t, caddyfile)
	return &chartProxy{url: fmt.Sprintf("http://127.0.0.1:%d", port), health: fmt.Sprintf("http://127.0.0.1:%d", health), caddy: c}
}

// TestChartServes runs what README's "Install on Kubernetes" installs, as far
// as a machine without a cluster can: the chart rendered with its default
// values (helm template ... -n monitoring --set upstream=...), its
// ServiceAccount and RBAC created for real, bin/caddy running the chart's
// Caddyfile with nothing but the chart's permissions (startChart), README's
// first MetricAccess applied, and a Grafana data source's request (the
// token of a ServiceAccount of team-a bound to the chart's metrics-reader
// ClusterRole, and the X-Tenant-Namespace header) answered with team-a's
// series only.
func TestChartServes(t *testing.T) {
	prom := testenv.SharedPrometheus(t)
	e := newKubeEnv(t, testenv.StartKubeAPIServer(t)) // its own: the chart binds cluster-wide and watches all namespaces
	ctx := t.Context()
	p := startChart(t, e, "monitoring", "", "upstream=http://"+prom.Addr)
	// README step 3, as written there.
	readme, err := os.ReadFile(filepath.Join(testenv.RepoRoot(), "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?s)## Install on Kubernetes\n.*?kubectl apply -f - <<'EOF'\n(.*?)\n *EOF\n`).FindSubmatch(readme)
	if m == nil {
		t.Fatal("README's Install on Kubernetes has no MetricAccess to apply")
	}
	e.namespace(t, "team-a")
	e.namespace(t, "team-b")
	e.apply(t, regexp.MustCompile(`(?m)^   `).ReplaceAllString(string(m[1]), ""))

	// README step 4: Grafana's ServiceAccount in team-a, bound to the chart's ClusterRole.
	if _, err := e.client.CoreV1().ServiceAccounts("team-a").Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "grafana"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.client.RbacV1().RoleBindings("team-a").Create(ctx, &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "prom-tenant-read"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "prom-tenant-metrics-reader"},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: "team-a", Name: "grafana"}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	gtr, err := e.client.CoreV1().ServiceAccounts("team-a").CreateToken(ctx, "grafana", &authnv1.TokenRequest{}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	query := func(token, ns string) (int, envelope) {
		req := request(t, "GET", p.url+"/api/v1/query?query=count+by+(namespace)(up)", ns, "")
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		status, env, _ := do(t, req)
		return status, env
	}
	eventually(t, "team-a served through the chart's configuration", 30*time.Second, func() bool {
		s, _ := query(gtr.Status.Token, "team-a")
		return s == 200
	})
	_, env := query(gtr.Status.Token, "team-a")
	var data struct {
		Result []struct{ Metric map[string]string }
	}
	if err := json.Unmarshal(env.Data, &data); err != nil || len(data.Result) != 1 || data.Result[0].Metric["namespace"] != "team-a" {
		t.Errorf("count by (namespace)(up) for team-a: %s %v, want team-a's series only", env.Data, err)
	}
	if s, env := query("", "team-a"); s != 401 {
		t.Errorf("no token: %d %+v, want 401", s, env)
	}
	if s, env := query(gtr.Status.Token, "team-b"); s != 403 {
		t.Errorf("team-a's token for team-b: %d %+v, want 403", s, env)
	}
	// The proxy writes the object's status with the chart's RBAC.
	eventually(t, "Ready=True on team-a/app-metrics", 10*time.Second, func() bool {
		c := e.readyCondition(t, "team-a", "app-metrics")
		return c != nil && c.Status == metav1.ConditionTrue
	})
	checkCannotRewriteChart(t, e, "monitoring")
	// The probes' endpoint.
	resp, err := http.Get(p.health + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("/healthz: %d", resp.StatusCode)
	}
}

// TestChartLeaderElection runs the chart's configuration of
// ci/kubernetes-remote-write.yaml (three replicas copying, tenants of two
// namespaces, backends from EndpointSlices) as three bin/caddy processes
// with the chart's RBAC: the copier's elections take the Leases in the
// state namespace monitoring-state (remoteWrite.stateNamespace's default),
// each held by one replica, and when the holder stops, the others take its
// Leases over; the proxy may not write the chart's ConfigMaps in monitoring.
// No MetricAccess copies here: what is elected is the right to copy, not a
// copy (TestRemoteWriteLeaderElection copies through it).
func TestChartLeaderElection(t *testing.T) {
	prom := testenv.SharedPrometheus(t)
	e := newKubeEnv(t, testenv.StartKubeAPIServer(t))
	replicas := startChartReplicas(t, e, 3, "monitoring", "kubernetes-remote-write.yaml", "remoteWrite.source=http://"+prom.Addr)
	checkCannotRewriteChart(t, e, "monitoring")
	leases := e.client.CoordinationV1().Leases("monitoring-state")
	holders := func(not string) []string {
		var out []string
		for i := range 4 {
			l, err := leases.Get(t.Context(), fmt.Sprintf("prom-tenant-copy-%d", i), metav1.GetOptions{})
			if err != nil || l.Spec.HolderIdentity == nil || !regexp.MustCompile(`^replica-[0-2]$`).MatchString(*l.Spec.HolderIdentity) ||
				*l.Spec.HolderIdentity == not {
				return nil
			}
			out = append(out, *l.Spec.HolderIdentity)
		}
		return out
	}
	var before []string
	eventually(t, "Leases monitoring-state/prom-tenant-copy-0..3 held by a replica", 30*time.Second, func() bool {
		before = holders("")
		return before != nil
	})
	// The holder of the first Lease stops (a rollout): it releases its Leases,
	// and the two others take every one over.
	var stopped int
	fmt.Sscanf(before[0], "replica-%d", &stopped)
	replicas[stopped].caddy.Stop()
	var after []string
	eventually(t, "every Lease held by another replica than "+before[0], 30*time.Second, func() bool {
		after = holders(before[0])
		return after != nil
	})
	t.Logf("Lease holders %v, after %s stopped %v", before, before[0], after)
}

// checkCannotRewriteChart: the API server denies the chart's ServiceAccount
// (release prom-tenant in ns) writing the chart's ConfigMaps there, the
// tenants' MetricAccess files and the Caddyfile: a stolen pod token must
// not widen a tenant's policy or drop authentication.
func checkCannotRewriteChart(t *testing.T, e *kubeEnv, ns string) {
	t.Helper()
	for _, cm := range []string{"prom-tenant-tenants", "prom-tenant-config"} {
		for _, verb := range []string{"update", "patch", "delete"} {
			r, err := e.client.AuthorizationV1().SubjectAccessReviews().Create(t.Context(), &authzv1.SubjectAccessReview{Spec: authzv1.SubjectAccessReviewSpec{
				User:               "system:serviceaccount:" + ns + ":prom-tenant",
				Groups:             []string{"system:serviceaccounts", "system:serviceaccounts:" + ns, "system:authenticated"},
				ResourceAttributes: &authzv1.ResourceAttributes{Namespace: ns, Verb: verb, Resource: "configmaps", Name: cm},
			}}, metav1.CreateOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if r.Status.Allowed {
				t.Errorf("the chart's ServiceAccount may %s configmaps/%s in %s: %s", verb, cm, ns, r.Status.Reason)
			}
		}
	}
}
