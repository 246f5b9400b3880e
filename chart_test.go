package promtenant

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"sigs.k8s.io/yaml"

	"github.com/prom-tenant/caddy-prom-tenant/internal/doccheck"
	"github.com/prom-tenant/caddy-prom-tenant/internal/testenv"
	"github.com/prom-tenant/caddy-prom-tenant/tenancy"
)

// chartDir is the Helm chart; its ci/*.yaml are the values files the tests
// render besides the defaults.
const chartDir = "deploy/helm/prom-tenant"

// chartValues is "" (the defaults) and every ci/*.yaml.
func chartValues(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(chartDir, "ci", "*.yaml"))
	if err != nil || len(files) < 3 {
		t.Fatalf("want at least 3 values files in %s/ci: %v %v", chartDir, files, err)
	}
	return append([]string{""}, files...)
}

// helm runs helm with args and returns its standard output; stderr goes
// into err.
func helm(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(testenv.HelmBinary(t), args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return string(out), &helmError{err: err, stderr: stderr.String()}
	}
	return string(out), nil
}

type helmError struct {
	err    error
	stderr string
}

func (e *helmError) Error() string { return e.err.Error() + ": " + e.stderr }

// renderChart is `helm template prom-tenant` in namespace prom-tenant with
// the values file (none for "") and --set flags, by kind and name.
func renderChart(t *testing.T, values string, set ...string) map[string][]byte {
	t.Helper()
	out, err := helm(t, templateArgs(values, set...)...)
	if err != nil {
		t.Fatalf("helm template %s %v: %v", values, set, err)
	}
	objs := map[string][]byte{}
	addObjects(t, "helm template "+values, []byte(out), objs)
	return objs
}

func templateArgs(values string, set ...string) []string {
	args := []string{"template", "prom-tenant", chartDir, "--namespace", "prom-tenant"}
	if values != "" {
		args = append(args, "--values", values)
	}
	for _, s := range set {
		args = append(args, "--set", s)
	}
	return args
}

// TestChartLint: the chart passes `helm lint --strict` with every values
// file, and the Caddyfile each renders adapts without a warning.
func TestChartLint(t *testing.T) {
	for _, v := range chartValues(t) {
		args := []string{"lint", "--strict", chartDir}
		if v != "" {
			args = append(args, "--values", v)
		}
		if out, err := helm(t, args...); err != nil {
			t.Errorf("helm lint %s: %v\n%s", v, err, out)
		}
		var cm corev1.ConfigMap
		decodeStrict(t, renderChart(t, v), "ConfigMap/prom-tenant-config", &cm)
		adaptCaddyfile(t, "the Caddyfile of "+v, cm.Data["Caddyfile"])
	}
}

// proxyHandlers returns the handler names of the server listening on
// :9091 and the prom_tenant handler's config.
func proxyHandlers(t *testing.T, name string, cfg map[string]any) ([]string, map[string]any) {
	t.Helper()
	for _, srv := range servers(t, name, cfg) {
		if !slices.Contains(srv.Listen, ":9091") {
			continue
		}
		if len(srv.Routes) != 1 {
			t.Fatalf("%s: the proxy server has %d routes, want 1", name, len(srv.Routes))
		}
		var names []string
		var promTenant map[string]any
		for _, h := range srv.Routes[0].HandlersRaw {
			var m map[string]any
			if err := json.Unmarshal(h, &m); err != nil {
				t.Fatal(err)
			}
			n, _ := m["handler"].(string)
			names = append(names, n)
			if n == "prom_tenant" {
				promTenant = m
			}
		}
		return names, promTenant
	}
	t.Fatalf("%s: no server on :9091", name)
	return nil, nil
}

// bindings lists every RoleBinding and ClusterRoleBinding rendered, as
// "Kind namespace/name -> roleRef".
func bindings(t *testing.T, objs map[string][]byte) []string {
	t.Helper()
	var out []string
	for key, doc := range objs {
		switch kind, _, _ := strings.Cut(key, "/"); {
		case kind == "RoleBinding" && strings.Count(key, "/") == 2: // the key with the namespace
			var b rbacv1.RoleBinding
			decodeStrict(t, objs, key, &b)
			out = append(out, "RoleBinding "+b.Namespace+"/"+b.Name+" -> "+b.RoleRef.Kind+"/"+b.RoleRef.Name)
		case kind == "ClusterRoleBinding":
			var b rbacv1.ClusterRoleBinding
			if err := yaml.UnmarshalStrict(doc, &b); err != nil {
				t.Fatal(err)
			}
			out = append(out, "ClusterRoleBinding "+b.Name+" -> "+b.RoleRef.Kind+"/"+b.RoleRef.Name)
		}
	}
	slices.Sort(out)
	return out
}

// TestChartRenders renders the chart with each values file and checks what
// a user relies on: a hardened pod, a Caddyfile that bin/caddy adapts and
// that authenticates as the values say, exactly the permissions that
// Caddyfile needs, copying that stays one copier per tenant over replicas.
func TestChartRenders(t *testing.T) {
	type want struct {
		handlers  []string
		tenant    string
		automount bool
		bindings  []string
		replicas  int32
		pdb, np   bool
		copies    bool   // prom_remote_write
		unelected bool   // prom_remote_write without leader election (one replica)
		comment   string // in the Caddyfile ConfigMap's comment: how requests authenticate
	}
	auth := "ClusterRoleBinding prom-tenant-auth-delegator -> ClusterRole/system:auth-delegator"
	maReader := "ClusterRoleBinding prom-tenant-metricaccess-reader -> ClusterRole/prom-tenant-metricaccess-reader"
	leases := "RoleBinding prom-tenant-state/prom-tenant-remote-write-leases -> Role/prom-tenant-remote-write-leases"
	tokenChain := []string{"authenticate_kubernetes", "prom_tenant", "reverse_proxy"}
	cases := []struct {
		name, values string
		set          []string
		want         want
	}{
		{"defaults", "", nil, want{handlers: tokenChain, tenant: "{http.vars.prom_tenant.namespace}", automount: true,
			bindings: []string{auth, maReader}, replicas: 2, pdb: true, np: true, comment: "must carry a Kubernetes bearer token"}},
		{"plain manifests", chartDir + "/ci/plain-manifests.yaml", nil, want{handlers: tokenChain, tenant: "{http.vars.prom_tenant.namespace}",
			automount: true, bindings: []string{auth}, replicas: 2, pdb: true, np: true, comment: "must carry a Kubernetes bearer token"}},
		{"kubernetes, remote write, 3 replicas", chartDir + "/ci/kubernetes-remote-write.yaml", nil, want{handlers: tokenChain,
			tenant: "{http.vars.prom_tenant.namespace}", automount: true, bindings: []string{auth,
				"RoleBinding monitoring/prom-tenant-discovery -> ClusterRole/prom-tenant-discovery",
				leases,
				"RoleBinding team-a/prom-tenant-metricaccess-reader -> ClusterRole/prom-tenant-metricaccess-reader",
				"RoleBinding team-a/prom-tenant-remote-write-services -> ClusterRole/prom-tenant-remote-write-services",
				"RoleBinding team-b/prom-tenant-metricaccess-reader -> ClusterRole/prom-tenant-metricaccess-reader",
				"RoleBinding team-b/prom-tenant-remote-write-secrets -> ClusterRole/prom-tenant-remote-write-secrets",
			}, replicas: 3, pdb: true, np: true, copies: true, comment: "must carry a Kubernetes bearer token"}},
		{"basic auth, static and MetricAccess tenants", chartDir + "/ci/static-basic-auth.yaml", nil, want{
			handlers: []string{"authentication", "prom_tenant", "reverse_proxy"}, tenant: "{http.auth.user.id}", automount: true,
			bindings: []string{"RoleBinding team-b/prom-tenant-metricaccess-reader -> ClusterRole/prom-tenant-metricaccess-reader"}, replicas: 1,
			comment: "# auth.type=basic: every request to the proxy must carry HTTP basic auth"}},
		// No authentication at all, asked for by name: the header is believed,
		// only from the trusted peers, and nothing may review tokens.
		{"header", "", []string{"auth.type=header", "auth.header.trustedFrom[0].podSelector.matchLabels.app=oauth2-proxy"}, want{handlers: []string{"prom_tenant", "reverse_proxy"},
			tenant: "{http.request.header.X-Tenant-Namespace}", automount: true, bindings: []string{maReader}, replicas: 2, pdb: true, np: true,
			comment: "# WARNING: auth.type=header, NO AUTHENTICATION."}},
		// One unelected copier: a rollout must not run two (Recreate), and
		// nothing may write Leases or ConfigMaps.
		{"one copier without leader election", chartDir + "/ci/kubernetes-remote-write.yaml", []string{"replicas=1", "remoteWrite.leaderElection=false"}, want{handlers: tokenChain,
			tenant: "{http.vars.prom_tenant.namespace}", automount: true, bindings: []string{auth,
				"RoleBinding monitoring/prom-tenant-discovery -> ClusterRole/prom-tenant-discovery",
				"RoleBinding team-a/prom-tenant-metricaccess-reader -> ClusterRole/prom-tenant-metricaccess-reader",
				"RoleBinding team-a/prom-tenant-remote-write-services -> ClusterRole/prom-tenant-remote-write-services",
				"RoleBinding team-b/prom-tenant-metricaccess-reader -> ClusterRole/prom-tenant-metricaccess-reader",
				"RoleBinding team-b/prom-tenant-remote-write-secrets -> ClusterRole/prom-tenant-remote-write-secrets",
			}, replicas: 1, np: true, copies: true, unelected: true, comment: "must carry a Kubernetes bearer token"}},
		// Nothing in the pod talks to the API server: no token, no binding.
		{"basic auth, files only", chartDir + "/ci/static-basic-auth.yaml", []string{"tenants.kubernetes.enabled=false"}, want{
			handlers: []string{"authentication", "prom_tenant", "reverse_proxy"}, tenant: "{http.auth.user.id}", replicas: 1,
			comment: "# auth.type=basic: every request to the proxy must carry HTTP basic auth"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			objs := renderChart(t, c.values, c.set...)
			checkHardenedPod(t, objs)
			if slices.Equal(c.want.handlers, tokenChain) {
				checkTokenAuth(t, objs)
			}

			var cm corev1.ConfigMap
			decodeStrict(t, objs, "ConfigMap/prom-tenant-config", &cm)
			caddyfile := cm.Data["Caddyfile"]
			cfg := adaptCaddyfile(t, c.name, caddyfile)
			handlers, pt := proxyHandlers(t, c.name, cfg)
			if !slices.Equal(handlers, c.want.handlers) || pt["tenant"] != c.want.tenant {
				t.Errorf("proxy handlers %v, tenant %v; want %v, tenant %s", handlers, pt["tenant"], c.want.handlers, c.want.tenant)
			}

			var dep appsv1.Deployment
			decodeStrict(t, objs, "Deployment/prom-tenant", &dep)
			pod := dep.Spec.Template.Spec
			if got := pod.AutomountServiceAccountToken != nil && *pod.AutomountServiceAccountToken; got != c.want.automount {
				t.Errorf("automountServiceAccountToken %v, want %v", got, c.want.automount)
			}
			if dep.Spec.Replicas == nil || *dep.Spec.Replicas != c.want.replicas {
				t.Errorf("replicas %v, want %d", dep.Spec.Replicas, c.want.replicas)
			}
			sum := sha256.Sum256([]byte(caddyfile))
			if got := dep.Spec.Template.Annotations["checksum/caddyfile"]; got != hex.EncodeToString(sum[:]) {
				t.Errorf("checksum/caddyfile %q is not the Caddyfile's sha256 %x", got, sum)
			}
			if got := pod.Containers[0].Image; got != "ghcr.io/prom-tenant/caddy-prom-tenant:"+testenv.ChartAppVersion(t) {
				t.Errorf("image %s, want ghcr.io/prom-tenant/caddy-prom-tenant:<appVersion>", got)
			}
			if got := bindings(t, objs); !slices.Equal(got, c.want.bindings) {
				t.Errorf("bindings:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(c.want.bindings, "\n"))
			}
			if _, ok := objs["PodDisruptionBudget/prom-tenant"]; ok != c.want.pdb {
				t.Errorf("PodDisruptionBudget rendered: %v, want %v", ok, c.want.pdb)
			}
			if _, ok := objs["NetworkPolicy/prom-tenant"]; ok != c.want.np {
				t.Errorf("NetworkPolicy rendered: %v, want %v", ok, c.want.np)
			}
			// The comment says how requests authenticate, and no other way.
			for _, say := range []string{"must carry a Kubernetes bearer token", "# auth.type=basic:", "auth.type=header, NO AUTHENTICATION"} {
				if got := strings.Contains(string(objs["ConfigMap/prom-tenant-config"]), say); got != strings.Contains(c.want.comment, say) {
					t.Errorf("the Caddyfile ConfigMap's comment says %q: %v, want %v", say, got, !got)
				}
			}
			if c.want.handlers[0] == "prom_tenant" { // header: only the trusted peers reach the port
				var np networkingv1.NetworkPolicy
				decodeStrict(t, objs, "NetworkPolicy/prom-tenant", &np)
				if from := np.Spec.Ingress[0].From; len(from) != 1 || from[0].PodSelector == nil || from[0].PodSelector.MatchLabels["app"] != "oauth2-proxy" {
					t.Errorf("auth.type=header: the proxy port admits %+v, want auth.header.trustedFrom only", from)
				}
			}
			apps, _ := cfg["apps"].(map[string]any)
			rw, copies := apps["prom_remote_write"].(map[string]any)
			if copies != c.want.copies {
				t.Fatalf("prom_remote_write configured: %v, want %v", copies, c.want.copies)
			}
			if copies {
				le, _ := rw["leader_election"].(map[string]any)
				if elected := rw["kubernetes"] != nil && le["disabled"] != true; elected == c.want.unelected {
					t.Errorf("prom_remote_write over %d replicas: leader election %v, want %v (kubernetes %v, leader_election %v)",
						c.want.replicas, elected, !c.want.unelected, rw["kubernetes"], rw["leader_election"])
				}
			}
			// Two unelected copiers side by side copy every tenant twice: a
			// rolling update would run the old pod and the new one at once.
			if recreate := dep.Spec.Strategy.Type == appsv1.RecreateDeploymentStrategyType; recreate != c.want.unelected {
				t.Errorf("strategy %q with an unelected copier: %v", dep.Spec.Strategy.Type, c.want.unelected)
			}
		})
	}
}

// TestChartMetricAccesses: MetricAccess objects from values are rendered as
// given, and the files of tenants.files load through the directory source
// (as TestDeployConfigMaps checks deploy/kubernetes's).
func TestChartMetricAccesses(t *testing.T) {
	objs := renderChart(t, chartDir+"/ci/static-basic-auth.yaml")
	var ma struct {
		Metadata struct{ Name, Namespace string }
		Spec     map[string]any
	}
	if err := yaml.Unmarshal(objs["MetricAccess/app"], &ma); err != nil || ma.Metadata.Namespace != "team-b" ||
		ma.Spec["metricIsolation"] != true || len(ma.Spec["metrics"].([]any)) != 2 {
		t.Errorf("MetricAccess team-b/app: %+v %v", ma, err)
	}
	var cm corev1.ConfigMap
	decodeStrict(t, objs, "ConfigMap/prom-tenant-tenants", &cm)
	tenants, errs := loadTenantFiles(t, cm.Data)
	if len(errs) > 0 || !slices.ContainsFunc(tenants, func(t *tenancy.Tenant) bool { return t.Namespace == "team-a" }) {
		t.Errorf("the tenants ConfigMap does not load team-a: %v, tenants %v", errs, tenants)
	}
}

// TestChartCaddyfileRollsPods: a change of the Caddyfile changes the pod
// template (the pods roll); a change of the tenant files does not, since
// the directory source re-reads them in place.
func TestChartCaddyfileRollsPods(t *testing.T) {
	checksum := func(set ...string) string {
		var dep appsv1.Deployment
		decodeStrict(t, renderChart(t, chartDir+"/ci/plain-manifests.yaml", set...), "Deployment/prom-tenant", &dep)
		return dep.Spec.Template.Annotations["checksum/caddyfile"]
	}
	base := checksum()
	if checksum("timeouts.write=5m") == base {
		t.Error("a new Caddyfile leaves the pod template unchanged: the pods keep the old one")
	}
	if checksum("tenants.files.team-b\\.yaml=kind: MetricAccess") != base {
		t.Error("a new tenant file rolls the pods: the directory source reads it without a restart")
	}
	var cm corev1.ConfigMap
	own := "{\n\tadmin off\n}\n\n:9091 {\n\trespond 404\n}\n"
	values := filepath.Join(t.TempDir(), "own.yaml")
	if raw, err := yaml.Marshal(map[string]string{"caddyfile": own}); err != nil || os.WriteFile(values, raw, 0o644) != nil {
		t.Fatal(err)
	}
	decodeStrict(t, renderChart(t, values), "ConfigMap/prom-tenant-config", &cm)
	if cm.Data["Caddyfile"] != own {
		t.Errorf("a Caddyfile of one's own is not used verbatim: %q", cm.Data["Caddyfile"])
	}
}

// valuesFile writes values (YAML) to a file for --values, for what --set
// cannot say: an empty map, a trailing backslash. "" is no file.
func valuesFile(t *testing.T, values string) string {
	t.Helper()
	if values == "" {
		return ""
	}
	f := filepath.Join(t.TempDir(), "values.yaml")
	if err := os.WriteFile(f, []byte(values), 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

// TestChartRefuses: values that would install something open or broken
// fail the render with a message saying what to set, and
// docs/TROUBLESHOOTING.md shows each message. The schema is skipped, as
// --skip-schema-validation does: the template's own checks must hold alone.
func TestChartRefuses(t *testing.T) {
	doc := doccheck.Troubleshooting(t)
	failed := regexp.MustCompile(`execution error at \([^)]*\): (.*)`)
	for _, c := range []struct {
		set    []string
		want   string
		reWith []string // doccheck.Generalize's pairs
		values string   // YAML, for what --set cannot say
	}{
		{[]string{"remoteWrite.enabled=true", "replicas=3", "remoteWrite.leaderElection=false"}, "needs remoteWrite.leaderElection=true",
			[]string{`replicas=3 needs`, `replicas=<n> needs`}, ""},
		{[]string{"auth.type=none"}, `auth.type "none": want kubernetes, basic or header`, []string{`"none"`, `"<type>"`}, ""},
		{[]string{"auth.type=basic"}, "auth.type=basic needs at least one user", nil, ""},
		{[]string{"networkPolicy.from=null"}, "networkPolicy.from is empty", nil, ""},
		{[]string{"upstream=http://a:1 { respond 200 }"}, "want one address", []string{`"http://a:1 \{ respond 200 \}"`, `"<upstream>"`}, ""},
		// Review 16c#2: a quote or backtick runs a token on to the next one,
		// a trailing backslash joins the next line.
		{[]string{`upstream="http://p:9090`, "remoteWrite.enabled=true"}, "want one address", []string{`"\\"http://p:9090"`, `"<upstream>"`}, ""},
		{[]string{"upstream=`http://p:9090"}, "want one address", []string{"\"`http://p:9090\"", `"<upstream>"`}, ""},
		{nil, "want one address", []string{`"http://p:9090\\\\"`, `"<upstream>"`}, "upstream: 'http://p:9090\\'\n"},
		{[]string{"backend=prometheus", "backendParams[0]=thanos"}, `backendParams "thanos" is a thanos parameter: it needs backend=thanos`,
			[]string{`"thanos" is a thanos parameter: it needs backend=thanos \(the backend is prometheus`, `"<name>" is a <engine> parameter: it needs backend=<engine> (the backend is <backend>`}, ""},
		{[]string{"backend=thanos", "backendParams[0]=nocache"}, `backendParams "nocache" is a victoriametrics parameter: it needs backend=victoriametrics`,
			[]string{`"nocache" is a victoriametrics parameter: it needs backend=victoriametrics \(the backend is thanos`, `"<name>" is a <engine> parameter: it needs backend=<engine> (the backend is <backend>`}, ""},
		{[]string{"backend=victoriametrics", "backendParams[0]=extra_label"}, `backendParams "extra_label": want the presets`, []string{`"extra_label"`, `"<name>"`}, ""},
		{[]string{"upstream=", "discovery.enabled=true", "remoteWrite.enabled=true"}, "remoteWrite.enabled needs remoteWrite.source or upstream", nil, ""},
		{[]string{"upstream="}, "upstream is empty", nil, ""},
		{[]string{"replicaLabels[0]=replica"}, "replicaLabels are Thanos Query's replica labels: they need backend=thanos", nil, ""},
		{[]string{"auth.type=basic", "auth.basic.users.team-a=$2a$14$8ouDaV8mZaWUB5IrGHM1Jei4jIVYiYtf3tUHRFj.dQVhnC5BHLGZm"},
			"is the hash of a published example password", []string{`users\.team-a`, `users.<user>`}, ""},
		{[]string{"auth.type=header", "auth.header.trustedFrom[0].podSelector.matchLabels.app=oauth2-proxy", "service.type=LoadBalancer"},
			"auth.type=header with service.type=LoadBalancer: the header is believed", []string{`=LoadBalancer`, `=<type>`}, ""},
		{[]string{"auth.type=header", "auth.header.trustedFrom[0].podSelector.matchLabels.app=oauth2-proxy", "networkPolicy.enabled=false"},
			"auth.type=header with networkPolicy.enabled=false: the header is believed", nil, ""},
		{[]string{"auth.type=header"}, "auth.type=header needs auth.header.trustedFrom", nil, ""}, // the default peers of networkPolicy.from are not enough
		// Review 16c#4: a peer that admits everything undoes the lock-down.
		{nil, "auth.header.trustedFrom[1] has an empty namespaceSelector and no podSelector: it admits every pod", []string{`\[1\]`, `[<i>]`},
			"auth: {type: header, header: {trustedFrom: [{podSelector: {matchLabels: {app: oauth2-proxy}}}, {namespaceSelector: {}}]}}\n"},
		{nil, "auth.header.trustedFrom[0] has an empty namespaceSelector", []string{`\[0\]`, `[<i>]`},
			"auth: {type: header, header: {trustedFrom: [{namespaceSelector: {}, podSelector: {}}]}}\n"},
		{nil, `auth.header.trustedFrom[0].ipBlock.cidr "0.0.0.0/0" admits every address`, []string{`\[0\]`, `[<i>]`, `"0\.0\.0\.0/0"`, `"<cidr>"`},
			"auth: {type: header, header: {trustedFrom: [{ipBlock: {cidr: 0.0.0.0/0}}]}}\n"},
		{nil, `auth.header.trustedFrom[0].ipBlock.cidr "::/0" admits every address`, []string{`\[0\]`, `[<i>]`, `"::/0"`, `"<cidr>"`},
			"auth: {type: header, header: {trustedFrom: [{ipBlock: {cidr: '::/0'}}]}}\n"},
		{[]string{"remoteWrite.enabled=true", "remoteWrite.stateNamespace=prom-tenant"}, "is the release namespace", []string{`"prom-tenant"`, `"<namespace>"`}, ""},
		{[]string{"rbac.leases=true", "remoteWrite.stateNamespace=prom-tenant"}, "is the release namespace", []string{`"prom-tenant"`, `"<namespace>"`}, ""},
		{[]string{"remoteWrite.enabled=true", "remoteWrite.stateNamespace=team-a", "tenants.kubernetes.namespaces[0]=team-a"}, "is a tenant namespace",
			[]string{`"team-a"`, `"<namespace>"`}, ""},
		{[]string{"remoteWrite.enabled=true", "remoteWrite.stateNamespace=team-b", "remoteWrite.secretsNamespaces[0]=team-b"}, "is a tenant namespace",
			[]string{`"team-b"`, `"<namespace>"`}, ""},
		// Review 16c#4: watching every namespace, an existing stateNamespace may be a tenant's.
		{[]string{"remoteWrite.enabled=true", "remoteWrite.stateNamespace=team-c", "remoteWrite.createStateNamespace=false"},
			"remoteWrite.createStateNamespace=false with tenants.kubernetes watching every namespace", []string{`"team-c"`, `"<namespace>"`}, ""},
		{[]string{"tenants.kubernetes.enabled=false"}, "no tenant source", nil, ""},
		{[]string{"metricAccesses[0].name=app"}, "metricAccesses: each entry needs name, namespace and spec", []string{`spec: .*$`, `spec: <entry>`}, ""},
	} {
		out, err := helm(t, append(templateArgs(valuesFile(t, c.values), c.set...), "--skip-schema-validation")...)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("helm template --set %v %s: %v (rendered %d bytes), want an error containing %q", c.set, c.values, err, len(out), c.want)
			continue
		}
		m := failed.FindStringSubmatch(err.Error())
		if m == nil {
			t.Errorf("helm template --set %v: not a fail of the chart's: %v", c.set, err)
			continue
		}
		doccheck.Shows(t, doc, "`"+doccheck.Generalize(strings.TrimSpace(m[1]), c.reWith...)+"`")
	}
}

// TestManifestsFromChart: deploy/kubernetes/*.yaml are what `make manifests`
// renders from the chart now (run it after changing the chart).
func TestManifestsFromChart(t *testing.T) {
	dir := t.TempDir()
	cmd := exec.Command("scripts/manifests.sh", dir)
	cmd.Env = append(os.Environ(), "HELM="+testenv.HelmBinary(t))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("scripts/manifests.sh: %v\n%s", err, out)
	}
	names := func(dir string) []string {
		files, _ := filepath.Glob(filepath.Join(dir, "*.yaml"))
		for i, f := range files {
			files[i] = filepath.Base(f)
		}
		return files
	}
	rendered, shipped := names(dir), names("deploy/kubernetes")
	if len(rendered) < 5 || !slices.Equal(shipped, rendered) {
		t.Fatalf("deploy/kubernetes has %v, the chart renders %v: run make manifests", shipped, rendered)
	}
	for _, f := range rendered {
		want, _ := os.ReadFile(filepath.Join(dir, f))
		got, _ := os.ReadFile(filepath.Join("deploy/kubernetes", f))
		if !bytes.Equal(got, want) {
			t.Errorf("deploy/kubernetes/%s differs from the chart's rendering: run make manifests", f)
		}
		// kubectl installs them: they must not claim to be a Helm release's.
		if bytes.Contains(got, []byte("helm.sh/chart")) || bytes.Contains(got, []byte("managed-by: Helm")) {
			t.Errorf("deploy/kubernetes/%s carries Helm's labels", f)
		}
	}
}

// TestChartSchema: values.schema.json refuses what the chart would
// otherwise ignore or pass on: a misspelt value (replicas silently left at
// its default), a password where a bcrypt hash belongs.
func TestChartSchema(t *testing.T) {
	for _, c := range []struct {
		set  []string
		want string
	}{
		{[]string{"replica=3"}, "additional properties 'replica' not allowed"},
		{[]string{"remoteWrite.leaderElecton=false"}, "additional properties 'leaderElecton' not allowed"},
		{[]string{"auth.type=basic", "auth.basic.users.team-a=secret"}, "/auth/basic/users/team-a"},
		{[]string{"auth.type=basic", "auth.basic.users.team-a=$2a$14$8ouDaV8mZaWUB5IrGHM1Jei4jIVYiYtf3tUHRFj.dQVhnC5BHLGZ"}, "/auth/basic/users/team-a"}, // cut short
		{[]string{"backend=mimir"}, "/backend"},
		// Every value the chart writes into the Caddyfile has a form that
		// cannot end its line or block (finding 9 of review 16b).
		{[]string{"upstream=http://a:1 { respond 200 }"}, "/upstream"},
		{[]string{`upstream="http://p:9090`, "remoteWrite.enabled=true"}, "/upstream"}, // review 16c#2
		{[]string{"upstream=`http://p:9090"}, "/upstream"},
		{[]string{"upstream=http://p:9090/'"}, "/upstream"},
		{[]string{`upstream=http://p:9090\\`}, "/upstream"}, // --set reads \\ as one backslash
		{[]string{"remoteWrite.source=http://a:1 { respond 200 }"}, "/remoteWrite/source"},
		{[]string{"remoteWrite.allowURLs[0]=https://a/ }"}, "/remoteWrite/allowURLs/0"},
		{[]string{"remoteWrite.allowURLs[0]=file:///etc/passwd"}, "/remoteWrite/allowURLs/0"},
		{[]string{"tenants.kubernetes.namespaces[0]=team-a }"}, "/tenants/kubernetes/namespaces/0"},
		{[]string{"remoteWrite.servicesNamespaces[0]=Team_A"}, "/remoteWrite/servicesNamespaces/0"},
		{[]string{"remoteWrite.stateNamespace=a#b"}, "/remoteWrite/stateNamespace"},
		{[]string{"discovery.namespace=monitoring }"}, "/discovery/namespace"},
		{[]string{"discovery.selector=app=a } respond 200 {"}, "/discovery/selector"},
		{[]string{"discovery.selector=app=a # comment"}, "/discovery/selector"},
		{[]string{"discovery.port=web }"}, "/discovery/port"},
		{[]string{"discovery.port=70000"}, "/discovery/port"},
		{[]string{"timeouts.write=3 minutes"}, "/timeouts/write"},
		{[]string{"timeouts.readHeader=10s }"}, "/timeouts/readHeader"},
	} {
		_, err := helm(t, templateArgs("", c.set...)...)
		if err == nil || !strings.Contains(err.Error(), "don't meet the specifications of the schema") || !strings.Contains(err.Error(), c.want) {
			t.Errorf("helm template --set %v: %v, want a schema error naming %q", c.set, err, c.want)
		}
	}
}

// TestChartSetBasedSelector: a set-based discovery.selector, whose spaces
// the Caddyfile splits into arguments, renders a Caddyfile that adapts to
// the same selector.
func TestChartSetBasedSelector(t *testing.T) {
	objs := renderChart(t, chartDir+"/ci/kubernetes-remote-write.yaml", `discovery.selector=app in (a\, b)\,tier!=cache`)
	var cm corev1.ConfigMap
	decodeStrict(t, objs, "ConfigMap/prom-tenant-config", &cm)
	raw, err := json.Marshal(adaptCaddyfile(t, "set-based selector", cm.Data["Caddyfile"]))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(raw), `"selector":"app in (a, b),tier!=cache"`) {
		t.Errorf("the adapted config has not the selector app in (a, b),tier!=cache:\n%s", raw)
	}
}

// TestChartThanos: ci/thanos.yaml configures prom_tenant for Thanos Query as
// README's "Thanos: what differs" does: backend, replica labels, and
// Grafana's Thanos parameters let through.
func TestChartThanos(t *testing.T) {
	var cm corev1.ConfigMap
	decodeStrict(t, renderChart(t, chartDir+"/ci/thanos.yaml"), "ConfigMap/prom-tenant-config", &cm)
	_, pt := proxyHandlers(t, "thanos", adaptCaddyfile(t, "thanos", cm.Data["Caddyfile"]))
	if pt["backend"] != "thanos" || !slices.Equal(toStrings(pt["replica_labels"]), []string{"replica"}) ||
		!slices.Equal(toStrings(pt["backend_params"]), []string{"thanos"}) {
		t.Errorf("prom_tenant %v, want backend thanos, replica_labels [replica], backend_params [thanos]", pt)
	}
}

func toStrings(v any) []string {
	list, _ := v.([]any)
	out := make([]string, len(list))
	for i, x := range list {
		out[i], _ = x.(string)
	}
	return out
}
