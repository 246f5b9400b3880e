package testenv

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	authnv1 "k8s.io/api/authentication/v1"
	authzv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
)

// TestKubeAPIServer walks what issue 4's authentication and discovery need from a real
// API server: ServiceAccount tokens, TokenReview, SubjectAccessReview following RBAC,
// EndpointSlices, and the admin kubeconfig.
func TestKubeAPIServer(t *testing.T) {
	k := SharedKubeAPIServer(t)
	ctx := t.Context()
	cs := kubernetes.NewForConfigOrDie(k.RESTConfig())

	// A fresh name: the server is shared, and outlives this test under -count=N.
	n, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "tenant-"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ns := n.Name
	// No controller-manager runs, so there is no "default" ServiceAccount: make one.
	if _, err := cs.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "reader"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	tr, err := cs.CoreV1().ServiceAccounts(ns).CreateToken(ctx, "reader", &authnv1.TokenRequest{}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	user := reviewToken(t, cs, tr.Status.Token)
	if want := "system:serviceaccount:" + ns + ":reader"; user.Username != want {
		t.Fatalf("TokenReview user = %q, want %q", user.Username, want)
	}
	if r, err := cs.AuthenticationV1().TokenReviews().Create(ctx, &authnv1.TokenReview{Spec: authnv1.TokenReviewSpec{Token: "not-a-token"}}, metav1.CreateOptions{}); err != nil || r.Status.Authenticated {
		t.Fatalf("TokenReview of a bogus token: authenticated=%v, err=%v", r != nil && r.Status.Authenticated, err)
	}

	// The default tenant authorization of issue 4: get pods.metrics.k8s.io in the namespace.
	sar := &authzv1.SubjectAccessReview{Spec: authzv1.SubjectAccessReviewSpec{
		User: user.Username, UID: user.UID, Groups: user.Groups,
		ResourceAttributes: &authzv1.ResourceAttributes{Namespace: ns, Verb: "get", Group: "metrics.k8s.io", Resource: "pods"},
	}}
	if allowed(t, cs, sar) {
		t.Fatal("SubjectAccessReview allowed before any grant")
	}
	role := &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Name: "metrics-reader"},
		Rules:      []rbacv1.PolicyRule{{APIGroups: []string{"metrics.k8s.io"}, Resources: []string{"pods"}, Verbs: []string{"get"}}},
	}
	if _, err := cs.RbacV1().Roles(ns).Create(ctx, role, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	binding := &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "metrics-reader"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: role.Name},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: ns, Name: "reader"}},
	}
	if _, err := cs.RbacV1().RoleBindings(ns).Create(ctx, binding, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// The RBAC authorizer reads roles from informers: the grant shows up shortly after.
	eventually(t, 10*time.Second, func() error {
		if !allowed(t, cs, sar) {
			return fmt.Errorf("SubjectAccessReview still denied after the RoleBinding")
		}
		return nil
	})

	slice := &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Name: "prometheus-abc", Labels: map[string]string{discoveryv1.LabelServiceName: "prometheus"}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints: []discoveryv1.Endpoint{
			{Addresses: []string{"10.1.0.1"}, Conditions: discoveryv1.EndpointConditions{Ready: new(true)}},
			{Addresses: []string{"10.1.0.2"}, Conditions: discoveryv1.EndpointConditions{Ready: new(false)}},
		},
		Ports: []discoveryv1.EndpointPort{{Name: new("web"), Port: new(int32(9090))}},
	}
	if _, err := cs.DiscoveryV1().EndpointSlices(ns).Create(ctx, slice, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	got, err := cs.DiscoveryV1().EndpointSlices(ns).Get(ctx, slice.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Endpoints) != 2 || got.Endpoints[0].Addresses[0] != "10.1.0.1" || !*got.Endpoints[0].Conditions.Ready ||
		*got.Endpoints[1].Conditions.Ready || *got.Ports[0].Port != 9090 {
		t.Fatalf("EndpointSlice read back as %+v", got)
	}

	// The kubeconfig file says the same as RESTConfig.
	cfg, err := clientcmd.BuildConfigFromFlags("", k.Kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kubernetes.NewForConfigOrDie(cfg).CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{}); err != nil {
		t.Fatalf("client from %s: %v", k.Kubeconfig, err)
	}
}

// TestKubeAPIServerRestart restarts the API server while a client keeps writing, and
// checks that every write it acknowledged survives, as do tokens and RBAC.
func TestKubeAPIServerRestart(t *testing.T) {
	start := time.Now()
	k := StartKubeAPIServer(t) // its own: a restart would disturb other tests
	t.Logf("StartKubeAPIServer took %v", time.Since(start).Round(time.Millisecond))
	ctx := t.Context()
	cs := kubernetes.NewForConfigOrDie(k.RESTConfig())
	const ns = "restart"
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := cs.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "sa"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	tr, err := cs.CoreV1().ServiceAccounts(ns).CreateToken(ctx, "sa", &authnv1.TokenRequest{}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}

	// The load: create ConfigMaps one after another, retrying through the outage.
	var (
		mu    sync.Mutex
		acked []string
		fails int
	)
	loadCtx, stopLoad := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; loadCtx.Err() == nil; i++ {
			name := fmt.Sprintf("cm-%d", i)
			reqCtx, cancel := context.WithTimeout(loadCtx, 2*time.Second)
			_, err := cs.CoreV1().ConfigMaps(ns).Create(reqCtx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
			cancel()
			mu.Lock()
			if err == nil {
				acked = append(acked, name)
			} else {
				fails++ // a failed create may still have been stored: not counted either way
			}
			mu.Unlock()
			if err != nil {
				time.Sleep(50 * time.Millisecond)
			}
		}
	}()
	count := func() int { mu.Lock(); defer mu.Unlock(); return len(acked) }
	eventually(t, 10*time.Second, func() error {
		if count() < 20 {
			return fmt.Errorf("only %d writes before the restart", count())
		}
		return nil
	})
	start = time.Now()
	k.Restart(t)
	t.Logf("Restart took %v", time.Since(start).Round(time.Millisecond))
	before := count()
	eventually(t, 10*time.Second, func() error {
		if count() < before+20 {
			return fmt.Errorf("only %d writes after the restart", count()-before)
		}
		return nil
	})
	stopLoad()
	<-done
	t.Logf("%d writes acknowledged, %d failed during the restart", len(acked), fails)

	list, err := cs.CoreV1().ConfigMaps(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	stored := map[string]bool{}
	for _, cm := range list.Items {
		stored[cm.Name] = true
	}
	for _, name := range acked {
		if !stored[name] {
			t.Errorf("ConfigMap %s was acknowledged but is gone after the restart", name)
		}
	}
	// Tokens issued before the restart stay valid: the signing key is the same.
	if user := reviewToken(t, cs, tr.Status.Token); !strings.HasSuffix(user.Username, ":"+ns+":sa") {
		t.Fatalf("TokenReview after restart: user %q", user.Username)
	}
}

func TestKubeAPIServerShared(t *testing.T) {
	a, b := SharedKubeAPIServer(t), SharedKubeAPIServer(t)
	if a != b {
		t.Fatal("SharedKubeAPIServer started two servers")
	}
	for _, f := range []string{a.Kubeconfig, a.CAFile, a.LogPath()} {
		if _, err := os.Stat(f); err != nil {
			t.Error(err)
		}
	}
}

func TestRequireKubeSkips(t *testing.T) {
	t.Setenv(EnvE2E, "")
	ok := t.Run("inner", func(t *testing.T) {
		StartKubeAPIServer(t)
		t.Error("StartKubeAPIServer did not skip")
	})
	if !ok {
		t.Fatal("inner test failed")
	}
}

func reviewToken(t *testing.T, cs kubernetes.Interface, token string) authnv1.UserInfo {
	t.Helper()
	r, err := cs.AuthenticationV1().TokenReviews().Create(t.Context(), &authnv1.TokenReview{Spec: authnv1.TokenReviewSpec{Token: token}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !r.Status.Authenticated {
		t.Fatalf("TokenReview: not authenticated: %s", r.Status.Error)
	}
	return r.Status.User
}

func allowed(t *testing.T, cs kubernetes.Interface, sar *authzv1.SubjectAccessReview) bool {
	t.Helper()
	r, err := cs.AuthorizationV1().SubjectAccessReviews().Create(t.Context(), sar, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return r.Status.Allowed
}

// eventually polls f until it returns nil, failing t with its last error after timeout.
func eventually(t *testing.T, timeout time.Duration, f func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
