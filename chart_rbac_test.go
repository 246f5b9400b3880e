package promtenant

import (
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"sigs.k8s.io/yaml"
)

// configMapWriters lists, for the objects rendered into release namespace
// ns, every binding that lets the chart's ServiceAccount write (create,
// update, patch, delete) ConfigMaps in a namespace where the objects hold
// a ConfigMap: there the proxy could rewrite its own Caddyfile or tenant
// policy. Roles the objects do not hold (system:auth-delegator) are the
// cluster's built-ins, which grant no ConfigMaps.
func configMapWriters(t *testing.T, objs map[string][]byte, ns string) []string {
	t.Helper()
	cmNamespaces := map[string]bool{}
	roles := map[string][]rbacv1.PolicyRule{} // "Role ns/name" or "ClusterRole name"
	type binding struct {
		ns, name string // ns "": cluster-wide
		ref      rbacv1.RoleRef
		subjects []rbacv1.Subject
	}
	var bindings []binding
	orNs := func(s string) string {
		if s == "" {
			return ns // what helm install puts an object without a namespace in
		}
		return s
	}
	for key, doc := range objs {
		kind, _, _ := strings.Cut(key, "/")
		var err error
		switch kind {
		case "ConfigMap":
			var cm corev1.ConfigMap
			err = yaml.UnmarshalStrict(doc, &cm)
			cmNamespaces[orNs(cm.Namespace)] = true
		case "Role":
			var r rbacv1.Role
			err = yaml.UnmarshalStrict(doc, &r)
			roles["Role "+orNs(r.Namespace)+"/"+r.Name] = r.Rules
		case "ClusterRole":
			var r rbacv1.ClusterRole
			err = yaml.UnmarshalStrict(doc, &r)
			roles["ClusterRole "+r.Name] = r.Rules
		case "RoleBinding":
			if strings.Count(key, "/") != 2 { // addObjects holds each also as RoleBinding/<ns>/<name>
				continue
			}
			var b rbacv1.RoleBinding
			err = yaml.UnmarshalStrict(doc, &b)
			bindings = append(bindings, binding{orNs(b.Namespace), b.Name, b.RoleRef, b.Subjects})
		case "ClusterRoleBinding":
			var b rbacv1.ClusterRoleBinding
			err = yaml.UnmarshalStrict(doc, &b)
			bindings = append(bindings, binding{"", b.Name, b.RoleRef, b.Subjects})
		}
		if err != nil {
			t.Fatalf("%s: %v", key, err)
		}
	}
	if len(cmNamespaces) == 0 {
		t.Fatal("no ConfigMap rendered: the chart always renders its Caddyfile's")
	}
	sa := rbacv1.Subject{Kind: rbacv1.ServiceAccountKind, Name: "prom-tenant", Namespace: ns}
	var out []string
	for _, b := range bindings {
		if !slices.Contains(b.subjects, sa) {
			continue
		}
		role := "ClusterRole " + b.ref.Name
		if b.ref.Kind == "Role" {
			role = "Role " + b.ns + "/" + b.ref.Name
		}
		for _, r := range roles[role] {
			if !writesConfigMaps(r) {
				continue
			}
			for cmNs := range cmNamespaces {
				if b.ns == "" || b.ns == cmNs {
					out = append(out, b.ns+"/"+b.name+" -> "+role+" writes configmaps in "+cmNs)
				}
			}
		}
	}
	slices.Sort(out)
	return out
}

func writesConfigMaps(r rbacv1.PolicyRule) bool {
	has := func(list []string, want ...string) bool {
		return slices.ContainsFunc(list, func(s string) bool { return s == "*" || slices.Contains(want, s) })
	}
	return has(r.APIGroups, "") && has(r.Resources, "configmaps") &&
		has(r.Verbs, "create", "update", "patch", "delete", "deletecollection")
}

// TestChartCannotRewriteItself: with every values file (and remote write
// with leader election, which needs a Role writing ConfigMaps), no role
// bound to the proxy's ServiceAccount may write ConfigMaps where the chart
// renders its own (the Caddyfile, the tenants' MetricAccess files): a
// stolen pod token must not widen a tenant's policy or drop authentication.
func TestChartCannotRewriteItself(t *testing.T) {
	for _, v := range chartValues(t) {
		for _, set := range [][]string{nil, {"remoteWrite.enabled=true"}, {"rbac.leases=true", "replicas=1"}} {
			objs := renderChart(t, v, set...)
			if w := configMapWriters(t, objs, "prom-tenant"); len(w) > 0 {
				t.Errorf("helm template %s %v: the ServiceAccount may write the chart's ConfigMaps:\n%s", v, set, strings.Join(w, "\n"))
			}
			if set != nil {
				checkLeasesRole(t, objs)
			}
		}
	}
	// deploy/kubernetes, rendered from the chart, copies nothing: no Role at all.
	if w := configMapWriters(t, manifests(t, "deploy/kubernetes/*.yaml"), "prom-tenant"); len(w) > 0 {
		t.Errorf("deploy/kubernetes: the ServiceAccount may write the ConfigMaps:\n%s", strings.Join(w, "\n"))
	}
}

// checkLeasesRole: the copiers' leader election may use Leases and
// ConfigMaps of the state namespace (remoteWrite.stateNamespace, default
// prom-tenant-state), which the chart renders, and nothing more.
func checkLeasesRole(t *testing.T, objs map[string][]byte) {
	t.Helper()
	var leases rbacv1.Role
	decodeStrict(t, objs, "Role/prom-tenant-remote-write-leases", &leases)
	want := []rbacv1.PolicyRule{
		{APIGroups: []string{"coordination.k8s.io"}, Resources: []string{"leases"}, Verbs: []string{"get", "create", "update"}},
		{APIGroups: []string{""}, Resources: []string{"configmaps"}, Verbs: []string{"get", "create", "update"}},
	}
	if leases.Namespace != "prom-tenant-state" || !slices.EqualFunc(leases.Rules, want, func(a, b rbacv1.PolicyRule) bool {
		return slices.Equal(a.APIGroups, b.APIGroups) && slices.Equal(a.Resources, b.Resources) && slices.Equal(a.Verbs, b.Verbs) && len(a.ResourceNames) == 0
	}) {
		t.Errorf("prom-tenant-remote-write-leases must grant get, create, update of leases and configmaps in prom-tenant-state: %+v", leases)
	}
	var b rbacv1.RoleBinding
	decodeStrict(t, objs, "RoleBinding/prom-tenant-remote-write-leases", &b)
	if b.Namespace != leases.Namespace || b.RoleRef.Kind != "Role" || b.RoleRef.Name != leases.Name ||
		!slices.Contains(b.Subjects, rbacv1.Subject{Kind: "ServiceAccount", Name: "prom-tenant", Namespace: "prom-tenant"}) {
		t.Errorf("prom-tenant-remote-write-leases is not bound to the proxy's ServiceAccount: %+v", b)
	}
	var ns corev1.Namespace
	decodeStrict(t, objs, "Namespace/prom-tenant-state", &ns)
}

// roleRules lists each Role ("Role ns/name") and ClusterRole rendered, with
// one "group/resource verb,verb" per group and resource of its rules.
func roleRules(t *testing.T, objs map[string][]byte) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	for key, doc := range objs {
		var r struct {
			Kind     string
			Metadata struct{ Name, Namespace string }
			Rules    []rbacv1.PolicyRule
		}
		if kind, _, _ := strings.Cut(key, "/"); kind != "Role" && kind != "ClusterRole" {
			continue
		}
		if err := yaml.Unmarshal(doc, &r); err != nil {
			t.Fatalf("%s: %v", key, err)
		}
		name := "ClusterRole " + r.Metadata.Name
		if r.Kind == "Role" {
			name = "Role " + r.Metadata.Namespace + "/" + r.Metadata.Name
		}
		var rules []string
		for _, rule := range r.Rules {
			if len(rule.ResourceNames) > 0 || len(rule.NonResourceURLs) > 0 {
				t.Errorf("%s: a rule with resourceNames or nonResourceURLs the table does not know: %+v", name, rule)
			}
			for _, g := range rule.APIGroups {
				for _, res := range rule.Resources {
					rules = append(rules, g+"/"+res+" "+strings.Join(rule.Verbs, ","))
				}
			}
		}
		out[name] = rules
	}
	return out
}

// TestChartRBACRules: every role the chart renders grants exactly what the
// code it serves calls (informers list and watch; the rest as noted), and
// no role is rendered for a feature that is off (unless rbac.unboundRoles):
// a widened verb or an extra role fails here, while the e2e chart tests
// show the grants suffice.
func TestChartRBACRules(t *testing.T) {
	metricsReader := []string{"metrics.k8s.io/pods get"} // the SubjectAccessReview authenticate_kubernetes asks (kubeauth/review.go)
	// tenancy/source_kubernetes.go: an informer, UpdateStatus of the Ready condition;
	// remotewrite/kubestatus.go: a merge patch of status.remoteWrite.
	maReader := []string{"observability.ethos.io/metricaccesses list,watch", "observability.ethos.io/metricaccesses/status update"}
	maReaderCopying := []string{"observability.ethos.io/metricaccesses list,watch", "observability.ethos.io/metricaccesses/status update,patch"}
	discovery := []string{"discovery.k8s.io/endpointslices list,watch"} // discovery/watcher.go: an informer
	services := []string{"/services get", "/pods list"}                 // remotewrite/services.go
	secrets := []string{"/secrets get"}                                 // remotewrite/secrets.go
	// remotewrite/election.go (resourcelock Get/Create/Update) and store_kube.go (ConfigMaps Get/Create/Update).
	leases := []string{"coordination.k8s.io/leases get,create,update", "/configmaps get,create,update"}
	for _, c := range []struct {
		name, values string
		set          []string
		want         map[string][]string
	}{
		{"defaults", "", nil, map[string][]string{
			"ClusterRole prom-tenant-metrics-reader": metricsReader, "ClusterRole prom-tenant-metricaccess-reader": maReader}},
		{"plain manifests (unbound roles)", chartDir + "/ci/plain-manifests.yaml", nil, map[string][]string{
			"ClusterRole prom-tenant-metrics-reader": metricsReader, "ClusterRole prom-tenant-metricaccess-reader": maReaderCopying,
			"ClusterRole prom-tenant-discovery": discovery, "ClusterRole prom-tenant-remote-write-services": services,
			"ClusterRole prom-tenant-remote-write-secrets": secrets}},
		{"kubernetes, remote write", chartDir + "/ci/kubernetes-remote-write.yaml", nil, map[string][]string{
			"ClusterRole prom-tenant-metrics-reader": metricsReader, "ClusterRole prom-tenant-metricaccess-reader": maReaderCopying,
			"ClusterRole prom-tenant-discovery": discovery, "ClusterRole prom-tenant-remote-write-services": services,
			"ClusterRole prom-tenant-remote-write-secrets": secrets, "Role prom-tenant-state/prom-tenant-remote-write-leases": leases}},
		{"discovery of pods", chartDir + "/ci/kubernetes-remote-write.yaml", []string{"discovery.kind=pods", "remoteWrite.enabled=false",
			"remoteWrite.servicesNamespaces=null", "remoteWrite.secretsNamespaces=null"}, map[string][]string{
			"ClusterRole prom-tenant-metrics-reader": metricsReader, "ClusterRole prom-tenant-metricaccess-reader": maReader,
			"ClusterRole prom-tenant-discovery": {"/pods list,watch"}}},
		{"basic auth", chartDir + "/ci/static-basic-auth.yaml", nil, map[string][]string{"ClusterRole prom-tenant-metricaccess-reader": maReader}},
		{"basic auth, files only", chartDir + "/ci/static-basic-auth.yaml", []string{"tenants.kubernetes.enabled=false"}, map[string][]string{}},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := roleRules(t, renderChart(t, c.values, c.set...))
			for name, rules := range got {
				if want, ok := c.want[name]; !ok || !slices.Equal(rules, want) {
					t.Errorf("%s grants %q, want %q", name, rules, want)
				}
			}
			for name := range c.want {
				if _, ok := got[name]; !ok {
					t.Errorf("no %s rendered", name)
				}
			}
		})
	}
}
