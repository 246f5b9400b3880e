package discovery

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"go.uber.org/zap"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/prom-tenant/caddy-prom-tenant/internal/kubewatch"
)

// ---- annotation filter ----

func TestAnnotationFilter(t *testing.T) {
	web := []discoveryv1.EndpointPort{port("web", 9090)}
	mk := func(ann map[string]string, addr string) *discoveryv1.EndpointSlice {
		s := slice(discoveryv1.AddressTypeIPv4, web, endpoint(nil, nil, addr))
		s.Annotations = ann
		return s
	}
	all := []*discoveryv1.EndpointSlice{
		mk(nil, "10.0.0.1"),
		mk(map[string]string{"prom-tenant/backend": "true"}, "10.0.0.2"),
		mk(map[string]string{"prom-tenant/backend": "false"}, "10.0.0.3"),
		mk(map[string]string{"prom-tenant/backend": "true", "tier": "hot"}, "10.0.0.4"),
		mk(map[string]string{"tier": "hot"}, "10.0.0.5"),
		mk(map[string]string{"empty": ""}, "10.0.0.6"),
	}
	tests := []struct {
		want map[string]string
		addr []string
	}{
		{nil, []string{"10.0.0.1:9090", "10.0.0.2:9090", "10.0.0.3:9090", "10.0.0.4:9090", "10.0.0.5:9090", "10.0.0.6:9090"}},
		{map[string]string{"prom-tenant/backend": "true"}, []string{"10.0.0.2:9090", "10.0.0.4:9090"}},
		{map[string]string{"prom-tenant/backend": "true", "tier": "hot"}, []string{"10.0.0.4:9090"}},
		{map[string]string{"empty": ""}, []string{"10.0.0.6:9090"}}, // an empty value must be present, not merely absent
		{map[string]string{"missing": "x"}, nil},
	}
	for _, tt := range tests {
		if got := addresses(annotated(all, tt.want), portSpec{name: "web"}); !slices.Equal(got, tt.addr) {
			t.Errorf("%v: got %q, want %q", tt.want, got, tt.addr)
		}
	}
}

func TestUnmarshalCaddyfileNewDirectives(t *testing.T) {
	tests := []struct {
		name, input string
		check       func(*KubernetesUpstreams) bool
		err         string
	}{
		{name: "annotations", input: `kubernetes {
			namespace a
			port web
			annotation prom-tenant.io/backend=true
			annotation tier=hot empty=
			annotation tier=hot
		}`, check: func(k *KubernetesUpstreams) bool {
			return reflect.DeepEqual(k.Annotations, map[string]string{"prom-tenant.io/backend": "true", "tier": "hot", "empty": ""})
		}},
		{name: "annotation with = in value", input: "kubernetes {\n namespace a\n port web\n annotation a=b=c\n}",
			check: func(k *KubernetesUpstreams) bool { return k.Annotations["a"] == "b=c" }},
		{name: "annotation without =", input: "kubernetes {\n namespace a\n port web\n annotation a\n}", err: "want <key>=<value>"},
		{name: "annotation empty key", input: "kubernetes {\n namespace a\n port web\n annotation =x\n}", err: "want <key>=<value>"},
		{name: "annotation conflict", input: "kubernetes {\n namespace a\n port web\n annotation a=1\n annotation a=2\n}", err: "different values"},
		{name: "annotation no args", input: "kubernetes {\n namespace a\n port web\n annotation\n}", err: "wrong argument count"},
		{name: "health", input: "kubernetes {\n namespace a\n port web\n health_uri /-/ready?x=1\n health_interval 5s\n health_timeout 500ms\n}",
			check: func(k *KubernetesUpstreams) bool {
				return k.HealthURI == "/-/ready?x=1" && k.HealthInterval == caddy.Duration(5*time.Second) && k.HealthTimeout == caddy.Duration(500*time.Millisecond)
			}},
		{name: "health uri only", input: "kubernetes {\n namespace a\n port web\n health_uri /-/healthy\n}",
			check: func(k *KubernetesUpstreams) bool { return k.HealthURI == "/-/healthy" && k.HealthInterval == 0 }},
		{name: "health uri not a path", input: "kubernetes {\n namespace a\n port web\n health_uri http://x/\n}", err: "starting with /"},
		{name: "health uri scheme-relative", input: "kubernetes {\n namespace a\n port web\n health_uri //evil.example/\n}", err: "not a path"},
		{name: "interval without uri", input: "kubernetes {\n namespace a\n port web\n health_interval 5s\n}", err: "need health_uri"},
		{name: "bad interval", input: "kubernetes {\n namespace a\n port web\n health_uri /\n health_interval soon\n}", err: "positive duration"},
		{name: "zero timeout", input: "kubernetes {\n namespace a\n port web\n health_uri /\n health_timeout 0s\n}", err: "positive duration"},
		{name: "two intervals", input: "kubernetes {\n namespace a\n port web\n health_uri /\n health_interval 1s\n health_interval 2s\n}", err: "already specified"},
		{name: "kind pods", input: "kubernetes {\n namespace a\n port web\n kind pods\n}", check: func(k *KubernetesUpstreams) bool { return k.Kind == KindPods }},
		{name: "kind services", input: "kubernetes {\n namespace a\n port 80\n kind services\n}", check: func(k *KubernetesUpstreams) bool { return k.Kind == KindServices }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got KubernetesUpstreams
			err := got.UnmarshalCaddyfile(caddyfile.NewTestDispenser(tt.input))
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("error %v, want one containing %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !tt.check(&got) {
				t.Errorf("got %+v", got)
			}
		})
	}
}

func TestProvisionPoolKey(t *testing.T) {
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	kc := kubeconfig(t)
	base := func() *KubernetesUpstreams {
		return &KubernetesUpstreams{Kubeconfig: kc, Namespaces: []string{"a"}, Port: "web"}
	}
	with := func(f func(*KubernetesUpstreams)) *KubernetesUpstreams { k := base(); f(k); return k }
	ups := map[string]*KubernetesUpstreams{
		"plain":      base(),
		"ann":        with(func(k *KubernetesUpstreams) { k.Annotations = map[string]string{"x": "1", "y": "2"} }),
		"ann same":   with(func(k *KubernetesUpstreams) { k.Annotations = map[string]string{"y": "2", "x": "1"} }),
		"ann other":  with(func(k *KubernetesUpstreams) { k.Annotations = map[string]string{"x": "1", "y": "3"} }),
		"ann tricky": with(func(k *KubernetesUpstreams) { k.Annotations = map[string]string{"x": "1,\"y\"=\"2\""} }),
		"pods":       with(func(k *KubernetesUpstreams) { k.Kind = KindPods }),
		"services":   with(func(k *KubernetesUpstreams) { k.Kind = KindServices }),
		"health":     with(func(k *KubernetesUpstreams) { k.HealthURI = "/-/ready" }),
		"health same": with(func(k *KubernetesUpstreams) {
			k.HealthURI = "/-/ready"
			k.HealthInterval = caddy.Duration(10 * time.Second)
		}),
		"health 5s": with(func(k *KubernetesUpstreams) {
			k.HealthURI = "/-/ready"
			k.HealthInterval = caddy.Duration(5 * time.Second)
		}),
		"health tls": with(func(k *KubernetesUpstreams) { k.HealthURI = "/-/ready"; k.Scheme = "https" }),
	}
	for name, k := range ups {
		if err := k.Provision(ctx); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	defer func() {
		for _, k := range ups {
			_ = k.Cleanup()
		}
	}()
	same := [][2]string{{"ann", "ann same"}, {"health", "health same"}}
	for _, p := range same {
		if ups[p[0]].watcher != ups[p[1]].watcher {
			t.Errorf("%s and %s: different watchers", p[0], p[1])
		}
	}
	distinct := []string{"plain", "ann", "ann other", "ann tricky", "pods", "services", "health", "health 5s", "health tls"}
	for i, a := range distinct {
		for _, b := range distinct[i+1:] {
			if ups[a].watcher == ups[b].watcher {
				t.Errorf("%s and %s share a watcher", a, b)
			}
		}
	}
	if h := ups["health"].watcher.opts.health; h == nil || h.interval != 10*time.Second || h.timeout != 2*time.Second || h.scheme != "http" {
		t.Errorf("health defaults: %+v", h)
	}

	for _, bad := range []*KubernetesUpstreams{
		with(func(k *KubernetesUpstreams) { k.HealthInterval = caddy.Duration(time.Second) }), // no uri
		with(func(k *KubernetesUpstreams) { k.HealthURI = "ready" }),
		with(func(k *KubernetesUpstreams) { k.Annotations = map[string]string{"": "x"} }),
	} {
		if err := bad.Provision(ctx); err == nil {
			t.Errorf("%+v: provisioned", bad)
			_ = bad.Cleanup()
		}
	}
}

// ---- active probe (loopback only) ----

// closedAddr returns a loopback address nothing listens on.
func closedAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a := l.Addr().String()
	_ = l.Close()
	return a
}

func hostport(t *testing.T, s *httptest.Server) string {
	t.Helper()
	a := strings.TrimPrefix(s.URL, "http://")
	a = strings.TrimPrefix(a, "https://")
	if h, _, _ := net.SplitHostPort(a); h != "127.0.0.1" {
		t.Fatalf("test server on %s: loopback only", a)
	}
	return a
}

func TestProber(t *testing.T) {
	var paths atomic.Value
	handler := func(code int) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			paths.Store(r.URL.RequestURI())
			if code == http.StatusFound {
				http.Redirect(w, r, "/elsewhere", code)
				return
			}
			w.WriteHeader(code)
		}
	}
	ok := httptest.NewServer(handler(http.StatusOK))
	defer ok.Close()
	noContent := httptest.NewServer(handler(http.StatusNoContent))
	defer noContent.Close()
	failing := httptest.NewServer(handler(http.StatusServiceUnavailable))
	defer failing.Close()
	redirect := httptest.NewServer(handler(http.StatusFound))
	defer redirect.Close()
	block := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-block:
		case <-r.Context().Done():
		}
	}))
	defer slow.Close()
	defer close(block)
	tlsOK := httptest.NewTLSServer(handler(http.StatusOK))
	defer tlsOK.Close()
	dead := closedAddr(t)

	p := newProber("http", "/-/ready?verbose=1", 300*time.Millisecond)
	addrs := []string{hostport(t, ok), hostport(t, noContent), hostport(t, failing), hostport(t, redirect), hostport(t, slow), dead}
	start := time.Now()
	down := p.failing(context.Background(), addrs)
	if el := time.Since(start); el > 2*time.Second {
		t.Errorf("probing took %v: the timeout is not applied", el)
	}
	want := map[string]bool{hostport(t, failing): true, hostport(t, redirect): true, hostport(t, slow): true, dead: true}
	if !reflect.DeepEqual(down, want) {
		t.Errorf("down = %v, want %v", down, want)
	}
	if got := paths.Load(); got != "/-/ready?verbose=1" {
		t.Errorf("probed %v", got)
	}
	if got := healthy(addrs, down); !slices.Equal(got, addrs[:2]) {
		t.Errorf("healthy = %v", got)
	}

	// https probes do not verify the certificate (liveness only).
	if !newProber("https", "/", time.Second).probe(context.Background(), hostport(t, tlsOK)) {
		t.Error("https probe failed")
	}
	// http against a TLS server fails.
	if newProber("http", "/", time.Second).probe(context.Background(), hostport(t, tlsOK)) {
		t.Error("plain http probe of a TLS server passed")
	}
	// A cancelled context fails fast.
	cctx, ccancel := context.WithCancel(context.Background())
	ccancel()
	if p.probe(cctx, hostport(t, ok)) {
		t.Error("probe with a cancelled context passed")
	}
}

// probeWatcher is a watcher without informers, driven by hand.
func probeWatcher(uri string) *watcher {
	return &watcher{
		opts:   watchOptions{health: &healthSpec{scheme: "http", uri: uri, interval: time.Hour, timeout: 300 * time.Millisecond}},
		prober: newProber("http", uri, 300*time.Millisecond), logger: zap.NewNop(),
		loop: kubewatch.New(), probeKick: make(chan struct{}, 1),
	}
}

func snap(w *watcher) []string {
	s := w.snapshot.Load()
	if s == nil {
		return nil
	}
	return s.addrs
}

func TestWatcherProbeRound(t *testing.T) {
	var healthyFlag atomic.Bool
	good := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer good.Close()
	flaky := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !healthyFlag.Load() {
			w.WriteHeader(http.StatusInternalServerError)
		}
	}))
	defer flaky.Close()
	g, f := hostport(t, good), hostport(t, flaky)
	addrs := []string{g, f}
	slices.SortFunc(addrs, compareAddr)

	w := probeWatcher("/-/ready")
	defer w.loop.Stop()

	// Newly discovered: healthy until probed, and a probe is requested at once.
	w.setDiscovered(addrs)
	if got := snap(w); !slices.Equal(got, addrs) {
		t.Fatalf("before the first probe: %v", got)
	}
	select {
	case <-w.probeKick:
	default:
		t.Fatal("new addresses did not request a probe")
	}
	w.probeRound(w.loop.Context())
	if got := snap(w); !slices.Equal(got, []string{g}) {
		t.Fatalf("after a failed probe: %v", got)
	}
	// An informer pass keeps the verdict and requests no probe for known addresses.
	w.setDiscovered(addrs)
	if got := snap(w); !slices.Equal(got, []string{g}) {
		t.Fatalf("after a pass: %v", got)
	}
	select {
	case <-w.probeKick:
		t.Fatal("known addresses requested a probe")
	default:
	}
	// Recovery.
	healthyFlag.Store(true)
	w.probeRound(w.loop.Context())
	if got := snap(w); !slices.Equal(got, addrs) {
		t.Fatalf("after recovery: %v", got)
	}
	// Down again, then gone: the verdict is forgotten; back: healthy until probed.
	healthyFlag.Store(false)
	w.probeRound(w.loop.Context())
	w.setDiscovered([]string{g})
	if len(w.down) != 0 {
		t.Fatalf("down keeps a vanished address: %v", w.down)
	}
	w.setDiscovered(addrs)
	if got := snap(w); !slices.Equal(got, addrs) {
		t.Fatalf("re-discovered: %v", got)
	}
	// A round cut short by shutdown publishes nothing.
	w.loop.Stop()
	w.probeRound(w.loop.Context())
	if got := snap(w); !slices.Equal(got, addrs) {
		t.Fatalf("after a cancelled round: %v", got)
	}
	// Nothing served: an empty, non-nil list.
	w.setDiscovered(nil)
	if s := w.snapshot.Load(); s == nil || s.addrs == nil || len(s.addrs) != 0 {
		t.Fatalf("empty: %#v", s)
	}
}

// ---- pods and services ----

func pod(name, ip string, phase corev1.PodPhase, ready corev1.ConditionStatus, deleting bool, ports ...corev1.ContainerPort) *corev1.Pod {
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns"},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Ports: ports}}},
		Status:     corev1.PodStatus{Phase: phase, PodIP: ip},
	}
	if ready != "" {
		p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodScheduled, Status: corev1.ConditionTrue}, {Type: corev1.PodReady, Status: ready}}
	}
	if deleting {
		now := metav1.Now()
		p.DeletionTimestamp = &now
	}
	return p
}

func TestPodAddresses(t *testing.T) {
	web := corev1.ContainerPort{Name: "web", ContainerPort: 9090}
	udp := corev1.ContainerPort{Name: "dns", ContainerPort: 53, Protocol: corev1.ProtocolUDP}
	run, yes := corev1.PodRunning, corev1.ConditionTrue
	pods := []*corev1.Pod{
		pod("ok", "10.0.0.2", run, yes, false, web),
		pod("ok-v6", "fd00:0::1", run, yes, false, web),
		pod("not-ready", "10.0.0.3", run, corev1.ConditionFalse, false, web),
		pod("no-condition", "10.0.0.4", run, "", false, web),
		pod("terminating", "10.0.0.5", run, yes, true, web),
		pod("pending", "10.0.0.6", corev1.PodPending, yes, false, web),
		pod("succeeded", "10.0.0.7", corev1.PodSucceeded, yes, false, web),
		pod("no-ip", "", run, yes, false, web),
		pod("garbage-ip", "x", run, yes, false, web),
		pod("other-port", "10.0.0.8", run, yes, false, corev1.ContainerPort{Name: "metrics", ContainerPort: 8080}),
		pod("udp", "10.0.0.9", run, yes, false, corev1.ContainerPort{Name: "web", ContainerPort: 53, Protocol: corev1.ProtocolUDP}),
		pod("ok2", "10.0.0.1", run, yes, false, udp, corev1.ContainerPort{Name: "web", ContainerPort: 9091, Protocol: corev1.ProtocolTCP}),
		nil,
	}
	second := pod("sidecar", "10.0.0.10", run, yes, false)
	second.Spec.Containers = append(second.Spec.Containers, corev1.Container{Name: "s", Ports: []corev1.ContainerPort{web}})
	initOnly := pod("init", "10.0.0.11", run, yes, false)
	initOnly.Spec.InitContainers = []corev1.Container{{Name: "i", Ports: []corev1.ContainerPort{web}}}
	pods = append(pods, second, initOnly, pod("dup", "10.0.0.2", run, yes, false, web))

	if got, want := podAddresses(pods, portSpec{name: "web"}),
		[]string{"10.0.0.1:9091", "10.0.0.2:9090", "10.0.0.10:9090", "[fd00::1]:9090"}; !slices.Equal(got, want) {
		t.Errorf("by name: got %q, want %q", got, want)
	}
	// By number: any ready pod, declared or not.
	if got, want := podAddresses(pods, portSpec{number: 7000}),
		[]string{"10.0.0.1:7000", "10.0.0.2:7000", "10.0.0.8:7000", "10.0.0.9:7000", "10.0.0.10:7000", "10.0.0.11:7000", "[fd00::1]:7000"}; !slices.Equal(got, want) {
		t.Errorf("by number: got %q, want %q", got, want)
	}
}

func svc(name, clusterIP string, typ corev1.ServiceType, ports ...corev1.ServicePort) *corev1.Service {
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns"},
		Spec:       corev1.ServiceSpec{Type: typ, ClusterIP: clusterIP, Ports: ports},
	}
}

func TestServiceAddresses(t *testing.T) {
	web := corev1.ServicePort{Name: "web", Port: 9090}
	deleting := svc("deleting", "10.96.0.9", corev1.ServiceTypeClusterIP, web)
	now := metav1.Now()
	deleting.DeletionTimestamp = &now
	svcs := []*corev1.Service{
		svc("prom", "10.96.0.2", corev1.ServiceTypeClusterIP, web, corev1.ServicePort{Name: "metrics", Port: 8080}),
		svc("default-type", "10.96.0.1", "", corev1.ServicePort{Name: "web", Port: 80, Protocol: corev1.ProtocolTCP}),
		svc("nodeport", "10.96.0.3", corev1.ServiceTypeNodePort, web),
		svc("v6", "fd00:10::0:1", corev1.ServiceTypeClusterIP, web),
		svc("headless", corev1.ClusterIPNone, corev1.ServiceTypeClusterIP, web),
		svc("no-ip", "", corev1.ServiceTypeClusterIP, web),
		svc("external", "", corev1.ServiceTypeExternalName, web),
		svc("udp", "10.96.0.5", corev1.ServiceTypeClusterIP, corev1.ServicePort{Name: "web", Port: 53, Protocol: corev1.ProtocolUDP}),
		svc("other", "10.96.0.6", corev1.ServiceTypeClusterIP, corev1.ServicePort{Name: "grpc", Port: 9090 + 1}),
		deleting,
		nil,
	}
	if got, want := serviceAddresses(svcs, portSpec{name: "web"}),
		[]string{"10.96.0.1:80", "10.96.0.2:9090", "10.96.0.3:9090", "[fd00:10::1]:9090"}; !slices.Equal(got, want) {
		t.Errorf("by name: got %q, want %q", got, want)
	}
	if got, want := serviceAddresses(svcs, portSpec{number: 8080}), []string{"10.96.0.2:8080"}; !slices.Equal(got, want) {
		t.Errorf("by number: got %q, want %q", got, want)
	}
	if got, want := serviceAddresses(svcs, portSpec{number: 9091}), []string{"10.96.0.6:9091"}; !slices.Equal(got, want) {
		t.Errorf("unnamed match by number: got %q, want %q", got, want)
	}
}

// ---- informer wiring, with client-go's fake clientset ----

func waitSnap(t *testing.T, w *watcher, want []string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if got := snap(w); got != nil && slices.Equal(got, want) {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("snapshot %q, want %q", snap(w), want)
}

func TestWatcherKindsWithFakeClient(t *testing.T) {
	ann := map[string]string{"prom-tenant.io/backend": "yes"}
	t.Run("endpointslices", func(t *testing.T) {
		s := slice(discoveryv1.AddressTypeIPv4, []discoveryv1.EndpointPort{port("web", 9090)}, endpoint(nil, nil, "10.0.0.1"))
		s.ObjectMeta = metav1.ObjectMeta{Name: "a", Namespace: "ns", Annotations: ann}
		other := s.DeepCopy()
		other.Name, other.Annotations, other.Endpoints[0].Addresses = "b", nil, []string{"10.0.0.2"}
		client := fake.NewClientset(s, other)
		w, err := newWatcher(client, watchOptions{kind: KindEndpointSlices, namespaces: []string{"ns"}, port: portSpec{name: "web"}, annotations: ann}, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer w.Destruct()
		w.start()
		waitSnap(t, w, []string{"10.0.0.1:9090"})
		other.Annotations = ann
		if _, err := client.DiscoveryV1().EndpointSlices("ns").Update(t.Context(), other, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		waitSnap(t, w, []string{"10.0.0.1:9090", "10.0.0.2:9090"})
	})
	t.Run("pods", func(t *testing.T) {
		p := pod("p", "10.0.0.1", corev1.PodRunning, corev1.ConditionTrue, false, corev1.ContainerPort{Name: "web", ContainerPort: 9090})
		p.Annotations = ann
		client := fake.NewClientset(p)
		w, err := newWatcher(client, watchOptions{kind: KindPods, namespaces: []string{"ns"}, port: portSpec{name: "web"}, annotations: ann}, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer w.Destruct()
		w.start()
		waitSnap(t, w, []string{"10.0.0.1:9090"})
		p.Status.Conditions[1].Status = corev1.ConditionFalse
		if _, err := client.CoreV1().Pods("ns").Update(t.Context(), p, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		waitSnap(t, w, []string{})
	})
	t.Run("services with probe", func(t *testing.T) {
		// Cluster IPs on loopback, so that the probe reaches httptest servers.
		good := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
		defer good.Close()
		bad := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusServiceUnavailable) }))
		defer bad.Close()
		portOf := func(s *httptest.Server) int32 {
			_, p, _ := net.SplitHostPort(hostport(t, s))
			n, _ := strconv.Atoi(p)
			return int32(n)
		}
		a := svc("a", "127.0.0.1", corev1.ServiceTypeClusterIP, corev1.ServicePort{Name: "web", Port: portOf(good)})
		b := svc("b", "127.0.0.1", corev1.ServiceTypeClusterIP, corev1.ServicePort{Name: "web", Port: portOf(bad)})
		client := fake.NewClientset(a, b)
		w, err := newWatcher(client, watchOptions{kind: KindServices, namespaces: []string{"ns"}, port: portSpec{name: "web"},
			health: &healthSpec{scheme: "http", uri: "/-/ready", interval: time.Hour, timeout: time.Second}}, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer w.Destruct()
		w.start()
		// The interval is an hour: only the immediate probe of new addresses can drop b.
		waitSnap(t, w, []string{hostport(t, good)})
	})
}
