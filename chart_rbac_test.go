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
