package promtenant

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

// manifests reads every object of the YAML files matching glob, by kind
// and name, each decoded strictly into the type its kind says.
func manifests(t *testing.T, glob string) map[string][]byte {
	t.Helper()
	files, err := filepath.Glob(glob)
	if err != nil || len(files) == 0 {
		t.Fatalf("no manifests match %s: %v", glob, err)
	}
	out := map[string][]byte{}
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		addObjects(t, f, raw, out)
	}
	return out
}

// addObjects adds every object of the YAML stream raw to out under
// "Kind/name", and a RoleBinding also under "RoleBinding/namespace/name"
// (the chart binds one ClusterRole by one name in several namespaces).
func addObjects(t *testing.T, src string, raw []byte, out map[string][]byte) {
	t.Helper()
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(raw)))
	for {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return
		}
		if err != nil {
			t.Fatalf("%s: %v", src, err)
		}
		var u unstructured.Unstructured
		if err := yaml.Unmarshal(doc, &u.Object); err != nil {
			t.Fatalf("%s: %v", src, err)
		}
		if len(u.Object) == 0 {
			continue
		}
		out[u.GetKind()+"/"+u.GetName()] = doc
		if u.GetKind() == "RoleBinding" {
			out[u.GetKind()+"/"+u.GetNamespace()+"/"+u.GetName()] = doc
		}
	}
}

func decodeStrict(t *testing.T, objs map[string][]byte, key string, into any) {
	t.Helper()
	doc, ok := objs[key]
	if !ok {
		t.Fatalf("no %s in the manifests", key)
	}
	if err := yaml.UnmarshalStrict(doc, into); err != nil {
		t.Fatalf("%s: %v", key, err)
	}
}

// adaptCaddyfile adapts cfg with every module of the binary registered and
// returns the JSON config, failing on warnings (an unformatted file included).
func adaptCaddyfile(t *testing.T, name, cfg string) map[string]any {
	t.Helper()
	adapter := caddyfile.Adapter{ServerType: httpcaddyfile.ServerType{}}
	out, warnings, err := adapter.Adapt([]byte(cfg), map[string]any{"filename": name})
	if err != nil || len(warnings) > 0 {
		t.Fatalf("%s does not adapt: %v %v", name, err, warnings)
	}
	var m map[string]any
	if err := json.Unmarshal(out, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// servers returns the adapted config's HTTP servers.
func servers(t *testing.T, name string, cfg map[string]any) map[string]*caddyhttp.Server {
	t.Helper()
	apps, _ := cfg["apps"].(map[string]any)
	httpApp, _ := apps["http"].(map[string]any)
	raw, err := json.Marshal(httpApp["servers"])
	if err != nil {
		t.Fatal(err)
	}
	var out map[string]*caddyhttp.Server
	if err := json.Unmarshal(raw, &out); err != nil || len(out) == 0 {
		t.Fatalf("%s: no servers: %v", name, err)
	}
	return out
}

// TestDeploySecureByDefault: `kubectl apply -f deploy/kubernetes/` installs
// a proxy that authenticates every request with a Kubernetes token before
// prom_tenant, takes the tenant from what was authorized, may create the
// reviews that needs, and admits connections only from chosen clients.
func TestDeploySecureByDefault(t *testing.T) {
	objs := manifests(t, "deploy/kubernetes/*.yaml")
	checkTokenAuth(t, objs)
	checkHardenedPod(t, objs)
	var dep appsv1.Deployment
	decodeStrict(t, objs, "Deployment/prom-tenant", &dep)

	// The header-trusting variant is an explicitly named example, with a warning.
	raw, err := os.ReadFile("examples/kubernetes-header-trusting/configmap.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(raw), "# WARNING: NO AUTHENTICATION.") {
		t.Error("examples/kubernetes-header-trusting/configmap.yaml does not start with its warning")
	}
}

// checkTokenAuth: the objects install a proxy that authenticates every
// request with a Kubernetes token before prom_tenant, takes the tenant from
// what was authorized, may create the reviews that needs, and admits
// connections only from chosen clients.
func checkTokenAuth(t *testing.T, objs map[string][]byte) {
	t.Helper()
	var cm corev1.ConfigMap
	decodeStrict(t, objs, "ConfigMap/prom-tenant-config", &cm)
	cfg := adaptCaddyfile(t, "configmap.yaml", cm.Data["Caddyfile"])
	var proxy *caddyhttp.Server
	for name, srv := range servers(t, "configmap.yaml", cfg) {
		if slices.Contains(srv.Listen, ":9091") {
			proxy = srv
			t.Logf("proxy server %s", name)
		}
	}
	if proxy == nil || len(proxy.Routes) != 1 {
		t.Fatalf("no single-route :9091 server in the shipped Caddyfile: %+v", proxy)
	}
	var handlers []map[string]any
	for _, h := range proxy.Routes[0].HandlersRaw {
		var m map[string]any
		if err := json.Unmarshal(h, &m); err != nil {
			t.Fatal(err)
		}
		handlers = append(handlers, m)
	}
	names := make([]string, len(handlers))
	for i, h := range handlers {
		names[i], _ = h["handler"].(string)
	}
	if !slices.Equal(names, []string{"authenticate_kubernetes", "prom_tenant", "reverse_proxy"}) {
		t.Errorf("the proxy's handlers are %v, want authenticate_kubernetes, prom_tenant, reverse_proxy", names)
	}
	if len(handlers) > 1 && handlers[1]["tenant"] != "{http.vars.prom_tenant.namespace}" {
		t.Errorf("prom_tenant's tenant is %v, want the authorized namespace {http.vars.prom_tenant.namespace}", handlers[1]["tenant"])
	}
	if len(handlers) > 0 && handlers[0]["kubeconfig"] != nil {
		t.Errorf("authenticate_kubernetes must use the in-cluster configuration: %v", handlers[0])
	}

	// The pod runs as the ServiceAccount that may review tokens, with its token mounted.
	var dep appsv1.Deployment
	decodeStrict(t, objs, "Deployment/prom-tenant", &dep)
	pod := dep.Spec.Template.Spec
	if pod.AutomountServiceAccountToken == nil || !*pod.AutomountServiceAccountToken || pod.ServiceAccountName != "prom-tenant" {
		t.Errorf("the Deployment must mount the prom-tenant ServiceAccount's token: automount %v, account %q",
			pod.AutomountServiceAccountToken, pod.ServiceAccountName)
	}
	var crb rbacv1.ClusterRoleBinding
	decodeStrict(t, objs, "ClusterRoleBinding/prom-tenant-auth-delegator", &crb)
	if crb.RoleRef.Kind != "ClusterRole" || crb.RoleRef.Name != "system:auth-delegator" ||
		!slices.Contains(crb.Subjects, rbacv1.Subject{Kind: "ServiceAccount", Name: "prom-tenant", Namespace: dep.Namespace}) {
		t.Errorf("system:auth-delegator is not bound to the proxy's ServiceAccount: %+v", crb)
	}
	var reader rbacv1.ClusterRole
	decodeStrict(t, objs, "ClusterRole/prom-tenant-metrics-reader", &reader)
	if len(reader.Rules) != 1 || !slices.Equal(reader.Rules[0].APIGroups, []string{"metrics.k8s.io"}) ||
		!slices.Equal(reader.Rules[0].Resources, []string{"pods"}) || !slices.Equal(reader.Rules[0].Verbs, []string{"get"}) {
		t.Errorf("prom-tenant-metrics-reader must grant exactly what the SubjectAccessReview asks (get pods.metrics.k8s.io): %+v", reader.Rules)
	}

	// The NetworkPolicy selects the proxy pods and admits the proxy port
	// only from listed sources.
	var np networkingv1.NetworkPolicy
	decodeStrict(t, objs, "NetworkPolicy/prom-tenant", &np)
	sel, err := metav1LabelSelector(np.Spec.PodSelector.MatchLabels)
	if err != nil || np.Namespace != dep.Namespace || len(np.Spec.PodSelector.MatchLabels) == 0 ||
		!sel.Matches(labels.Set(dep.Spec.Template.Labels)) {
		t.Errorf("the NetworkPolicy does not select the proxy's pods: %+v in %s, pods %v", np.Spec.PodSelector, np.Namespace, dep.Spec.Template.Labels)
	}
	if !slices.Contains(np.Spec.PolicyTypes, networkingv1.PolicyTypeIngress) {
		t.Errorf("the NetworkPolicy does not restrict ingress: %v", np.Spec.PolicyTypes)
	}
	proxyPort := intstr.FromString("proxy")
	admitted := false
	for _, rule := range np.Spec.Ingress {
		for _, p := range rule.Ports {
			if p.Port != nil && (*p.Port == proxyPort || *p.Port == intstr.FromInt32(9091)) {
				admitted = true
				if len(rule.From) == 0 {
					t.Errorf("the NetworkPolicy admits the proxy port from everywhere")
				}
			}
		}
		if len(rule.Ports) == 0 {
			t.Errorf("a NetworkPolicy rule admits every port: %+v", rule)
		}
	}
	if !admitted {
		t.Error("the NetworkPolicy admits no one to the proxy port")
	}
	if !slices.ContainsFunc(dep.Spec.Template.Spec.Containers[0].Ports, func(p corev1.ContainerPort) bool {
		return p.Name == "proxy" && p.ContainerPort == 9091
	}) {
		t.Error("the container has no port named proxy: the NetworkPolicy names it")
	}
}

// checkHardenedPod: the proxy's pod runs as nobody (65534) with no
// privileges, a read-only root filesystem and the runtime's seccomp
// profile, and is probed on its health port, which answers only /healthz.
func checkHardenedPod(t *testing.T, objs map[string][]byte) {
	t.Helper()
	var dep appsv1.Deployment
	decodeStrict(t, objs, "Deployment/prom-tenant", &dep)
	pod := dep.Spec.Template.Spec
	psc := pod.SecurityContext
	if psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot || psc.RunAsUser == nil || *psc.RunAsUser != 65534 ||
		psc.RunAsGroup == nil || *psc.RunAsGroup != 65534 || psc.SeccompProfile == nil || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("the pod must run as non-root 65534:65534 with seccomp RuntimeDefault: %+v", psc)
	}
	if pod.HostNetwork || pod.HostPID || pod.HostIPC {
		t.Errorf("the pod shares a host namespace: network %v, pid %v, ipc %v", pod.HostNetwork, pod.HostPID, pod.HostIPC)
	}
	if len(pod.Containers) != 1 || len(pod.InitContainers) != 0 {
		t.Fatalf("want one container, got %d (and %d init containers)", len(pod.Containers), len(pod.InitContainers))
	}
	c := pod.Containers[0]
	sc := c.SecurityContext
	if sc == nil || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation || sc.ReadOnlyRootFilesystem == nil ||
		!*sc.ReadOnlyRootFilesystem || sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) ||
		len(sc.Capabilities.Add) > 0 || (sc.Privileged != nil && *sc.Privileged) {
		t.Errorf("the container must drop ALL capabilities, add none, have a read-only root and no privilege escalation: %+v", sc)
	}
	for name, p := range map[string]*corev1.Probe{"readiness": c.ReadinessProbe, "liveness": c.LivenessProbe} {
		if p == nil || p.HTTPGet == nil || p.HTTPGet.Path != "/healthz" || p.HTTPGet.Port != intstr.FromString("health") {
			t.Errorf("%s probe: want GET /healthz on the health port: %+v", name, p)
		}
	}
	if !slices.Equal(c.Args, []string{"run", "--config", "/etc/caddy/Caddyfile", "--adapter", "caddyfile"}) {
		t.Errorf("the container runs %v, want run --config /etc/caddy/Caddyfile --adapter caddyfile", c.Args)
	}
	if c.Resources.Limits.Memory().IsZero() {
		t.Error("the container has no memory limit")
	}
	// Caddy writes its autosave and data under XDG_*_HOME: on the only
	// writable mount, an emptyDir at /tmp.
	mounts := map[string]corev1.VolumeMount{}
	for _, m := range c.VolumeMounts {
		mounts[m.MountPath] = m
		if m.MountPath != "/tmp" && !m.ReadOnly {
			t.Errorf("mount %s is writable", m.MountPath)
		}
	}
	tmp, ok := mounts["/tmp"]
	if !ok || !slices.ContainsFunc(pod.Volumes, func(v corev1.Volume) bool { return v.Name == tmp.Name && v.EmptyDir != nil }) {
		t.Errorf("/tmp is not an emptyDir: %+v", pod.Volumes)
	}
	if _, ok := mounts["/etc/caddy"]; !ok {
		t.Error("no Caddyfile mounted at /etc/caddy")
	}
	for _, e := range c.Env {
		if (e.Name == "XDG_CONFIG_HOME" || e.Name == "XDG_DATA_HOME") && !strings.HasPrefix(e.Value, "/tmp/") {
			t.Errorf("%s=%s is on the read-only root", e.Name, e.Value)
		}
	}
}

func metav1LabelSelector(m map[string]string) (labels.Selector, error) {
	return labels.ValidatedSelectorFromSet(m)
}

var caddyfileBlock = regexp.MustCompile("(?s)```caddyfile\n(.*?)```")

// TestShippedTimeouts: every complete configuration shipped (Caddyfile.example,
// the Kubernetes ConfigMaps, the README's full example) bounds slow clients
// on every server: the request body, the headers, the answer and idle
// connections, with the answer's bound above Prometheus's default query
// timeout. e2e.TestSlowBodyCutOff shows the mechanism on bin/caddy.
func TestShippedTimeouts(t *testing.T) {
	configs := map[string]string{}
	raw, err := os.ReadFile("Caddyfile.example")
	if err != nil {
		t.Fatal(err)
	}
	configs["Caddyfile.example"] = string(raw)
	for _, f := range []string{"deploy/kubernetes/configmap.yaml", "examples/kubernetes-header-trusting/configmap.yaml", "examples/thanos/configmap.yaml"} {
		var cm corev1.ConfigMap
		decodeStrict(t, manifests(t, f), "ConfigMap/prom-tenant-config", &cm)
		configs[f] = cm.Data["Caddyfile"]
	}
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	complete := 0
	for _, m := range caddyfileBlock.FindAllStringSubmatch(string(readme), -1) {
		// A complete configuration: global options and at least one site.
		if strings.HasPrefix(m[1], "{\n") && regexp.MustCompile(`(?m)^[^\s{}#][^\n]*\{$`).MatchString(m[1]) {
			complete++
			configs["README.md example "+string(rune('0'+complete))] = m[1]
		}
	}
	if complete == 0 {
		t.Fatal("the README has no complete Caddyfile example")
	}
	for name, cfg := range configs {
		adapter := caddyfile.Adapter{ServerType: httpcaddyfile.ServerType{}}
		out, _, err := adapter.Adapt([]byte(cfg), nil)
		if err != nil {
			t.Fatalf("%s does not adapt: %v", name, err)
		}
		var m map[string]any
		if err := json.Unmarshal(out, &m); err != nil {
			t.Fatal(err)
		}
		for sname, srv := range servers(t, name, m) {
			check := func(what string, got, atLeast, atMost time.Duration) {
				if got < atLeast || got > atMost {
					t.Errorf("%s, server %s: %s is %v, want between %v and %v", name, sname, what, got, atLeast, atMost)
				}
			}
			check("timeouts read_body", time.Duration(srv.ReadTimeout), time.Second, time.Minute)
			check("timeouts read_header", time.Duration(srv.ReadHeaderTimeout), time.Second, time.Minute)
			check("timeouts idle", time.Duration(srv.IdleTimeout), time.Second, 5*time.Minute)
			check("timeouts write", time.Duration(srv.WriteTimeout), 2*time.Minute+time.Second, 10*time.Minute)
		}
	}
}
