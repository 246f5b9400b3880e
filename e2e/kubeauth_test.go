package e2e

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	authnv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/prom-tenant/caddy-prom-tenant/internal/testenv"
)

// TestKubernetesTokenAuth puts authenticate_kubernetes in front of prom_tenant
// and drives it with a real ServiceAccount token: refused without a token,
// with a garbage token, and without the RBAC grant; served (team-a's series
// only) once a Role and RoleBinding grant get pods.metrics.k8s.io in team-a;
// refused for team-b. The namespace comes from one place (the header) and
// prom_tenant uses the authorized value, with its default tenant placeholder
// as well as with {http.vars.prom_tenant.namespace}.
func TestKubernetesTokenAuth(t *testing.T) {
	api := testenv.SharedKubeAPIServer(t)
	ctx := t.Context()
	cs := kubernetes.NewForConfigOrDie(api.RESTConfig())
	for _, ns := range []string{"team-a", "team-b"} {
		if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatal(err)
		}
	}
	// A fresh ServiceAccount: the API server is shared and outlives -count=N.
	sa, err := cs.CoreV1().ServiceAccounts("team-a").Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{GenerateName: "kubeauth-"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		bg := t.Context()
		_ = cs.CoreV1().ServiceAccounts("team-a").Delete(bg, sa.Name, metav1.DeleteOptions{})
	})
	tr, err := cs.CoreV1().ServiceAccounts("team-a").CreateToken(ctx, sa.Name, &authnv1.TokenRequest{}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	token := tr.Status.Token

	port, port2 := freePort(t), freePort(t)
	startProxy(t, tenantsDir, fmt.Sprintf(`
http://127.0.0.1:%[1]d {
	authenticate_kubernetes {
		kubeconfig %[3]s
		denied_cache_ttl 100ms
	}
	prom_tenant
	reverse_proxy {prometheus}
}

http://127.0.0.1:%[2]d {
	authenticate_kubernetes {
		kubeconfig %[3]s
		denied_cache_ttl 100ms
	}
	prom_tenant {
		tenant {http.vars.prom_tenant.namespace}
	}
	reverse_proxy {prometheus}
}
`, port, port2, api.Kubeconfig))
	query := "/api/v1/query?query=count+by+(namespace)(up)"
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	call := func(base, tok, ns string) (int, envelope) {
		req := request(t, "GET", base+query, ns, "")
		if tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		status, env, _ := do(t, req)
		return status, env
	}
	expect := func(what string, status int, env envelope, wantStatus int, wantType, wantMsg string) {
		t.Helper()
		if status != wantStatus || env.Status != "error" || env.ErrorType != wantType || !strings.Contains(env.Error, wantMsg) {
			t.Fatalf("%s: %d %+v; want %d %s containing %q", what, status, env, wantStatus, wantType, wantMsg)
		}
		if strings.Contains(env.Error, token) {
			t.Fatalf("%s: the error names the token", what)
		}
	}

	s, env := call(base, "", "team-a")
	expect("no token", s, env, http.StatusUnauthorized, "unauthorized", "bearer token")
	s, env = call(base, "garbage.token.here", "team-a")
	expect("garbage token", s, env, http.StatusUnauthorized, "unauthorized", "not valid")
	s, env = call(base, token, "team-a")
	expect("no RBAC grant", s, env, http.StatusForbidden, "forbidden", `may not get pods.metrics.k8s.io in namespace "team-a"`)

	role := &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Name: sa.Name},
		Rules:      []rbacv1.PolicyRule{{APIGroups: []string{"metrics.k8s.io"}, Resources: []string{"pods"}, Verbs: []string{"get"}}},
	}
	if _, err := cs.RbacV1().Roles("team-a").Create(ctx, role, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	binding := &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: sa.Name},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: role.Name},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: "team-a", Name: sa.Name}},
	}
	if _, err := cs.RbacV1().RoleBindings("team-a").Create(ctx, binding, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		bg := t.Context()
		_ = cs.RbacV1().RoleBindings("team-a").Delete(bg, binding.Name, metav1.DeleteOptions{})
		_ = cs.RbacV1().Roles("team-a").Delete(bg, role.Name, metav1.DeleteOptions{})
	})

	teamAOnly := func(status int, env envelope) bool {
		d := string(env.Data)
		return status == http.StatusOK && strings.Contains(d, `"namespace":"team-a"`) && !strings.Contains(d, "team-b")
	}
	var last string
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		s, env := call(base, token, "team-a")
		if teamAOnly(s, env) {
			break
		}
		last = fmt.Sprintf("%d %s %s", s, env.Error, env.Data)
		if time.Now().After(deadline) {
			t.Fatalf("granted token never served: last answer %s", last)
		}
	}

	// Without a header the ServiceAccount's own namespace is used, and prom_tenant
	// sees it, with its default placeholder as with the var.
	for _, b := range []string{base, fmt.Sprintf("http://127.0.0.1:%d", port2)} {
		if s, env := call(b, token, ""); !teamAOnly(s, env) {
			t.Fatalf("%s, no namespace header: %d %s %s", b, s, env.Error, env.Data)
		}
		if s, env := call(b, token, "team-a"); !teamAOnly(s, env) {
			t.Fatalf("%s, team-a: %d %s %s", b, s, env.Error, env.Data)
		}
		s, env := call(b, token, "team-b")
		expect("team-a's token asking for team-b", s, env, http.StatusForbidden, "forbidden", `in namespace "team-b"`)
		s, env = call(b, token, "team-a,team-b")
		expect("two namespaces", s, env, http.StatusBadRequest, "bad_data", "exactly one")
		s, env = call(b, "garbage", "team-a")
		expect("garbage token", s, env, http.StatusUnauthorized, "unauthorized", "not valid")
	}
}
