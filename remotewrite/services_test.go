package remotewrite

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/prom-tenant/caddy-prom-tenant/tenancy"
	"github.com/prom-tenant/caddy-prom-tenant/tenancy/v1alpha1"
)

func testService(ns, name string, selector map[string]string, port int32, target intstr.IntOrString) *corev1.Service {
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: corev1.ServiceSpec{
			Selector: selector,
			Ports:    []corev1.ServicePort{{Name: "web", Port: port, TargetPort: target}},
		},
	}
}

// testPod is a running, ready Pod with a container port "web".
func testPod(ns, name, ip string, lbls map[string]string, webPort int32) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: lbls},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{
			Name: "prometheus", Ports: []corev1.ContainerPort{{Name: "web", ContainerPort: webPort}},
		}}},
		Status: corev1.PodStatus{
			Phase: corev1.PodRunning, PodIP: ip,
			Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}},
		},
	}
}

func TestKubeServicesAddresses(t *testing.T) {
	app := map[string]string{"app": "prom"}
	notReady := testPod("team-a", "not-ready", "10.1.0.3", app, 9090)
	notReady.Status.Conditions[0].Status = corev1.ConditionFalse
	hostNet := testPod("team-a", "host-net", "192.168.0.7", app, 9090)
	hostNet.Spec.HostNetwork = true
	pending := testPod("team-a", "pending", "10.1.0.4", app, 9090)
	pending.Status.Phase = corev1.PodPending
	deleting := testPod("team-a", "deleting", "10.1.0.5", app, 9090)
	deleting.DeletionTimestamp = &metav1.Time{}
	noIP := testPod("team-a", "no-ip", "", app, 9090)
	externalName := testService("team-a", "elsewhere", app, 9090, intstr.FromInt(9090))
	externalName.Spec.Type = corev1.ServiceTypeExternalName
	externalName.Spec.ExternalName = "prometheus.team-b.svc.cluster.local"

	objects := []runtime.Object{
		testService("team-a", "prom", app, 9090, intstr.FromString("web")),
		testService("team-a", "numbered", app, 80, intstr.FromInt(9091)),
		testService("team-a", "same-port", app, 9092, intstr.IntOrString{}),
		testService("team-a", "unselected", map[string]string{"app": "none"}, 9090, intstr.FromInt(9090)),
		testService("team-a", "manual", nil, 9090, intstr.FromInt(9090)),
		externalName,
		testPod("team-a", "ready", "10.1.0.2", app, 9090),
		notReady, hostNet, pending, deleting, noIP,
		// Another namespace's Pod with the same labels is never an endpoint of team-a's Service.
		testPod("team-b", "other-tenant", "10.2.0.2", app, 9090),
	}
	k := newKubeServices(fake.NewSimpleClientset(objects...))

	for _, tc := range []struct {
		service string
		port    int
		want    string // addresses, comma-separated
		err     string // when refused: part of the message
	}{
		{service: "prom", port: 9090, want: "10.1.0.2:9090"},
		{service: "numbered", port: 80, want: "10.1.0.2:9091"},
		{service: "same-port", port: 9092, want: "10.1.0.2:9092"},
		{service: "prom", port: 9091, err: "has no TCP port 9091"},
		{service: "unselected", port: 9090, err: "no ready Pod of its selector app=none serves port 9090"},
		{service: "manual", port: 9090, err: "it has no selector"},
		{service: "elsewhere", port: 9090, err: "ExternalName"},
		{service: "missing", port: 9090, err: "not found"},
	} {
		addrs, err := k.addresses(context.Background(), serviceKey{namespace: "team-a", name: tc.service, port: tc.port})
		switch {
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("%s:%d: err = %v, want one saying %q", tc.service, tc.port, err, tc.err)
		case tc.err == "" && err != nil:
			t.Errorf("%s:%d: %v", tc.service, tc.port, err)
		case tc.err == "" && strings.Join(addrs, ",") != tc.want:
			t.Errorf("%s:%d: addresses %v, want %s", tc.service, tc.port, addrs, tc.want)
		}
		if err != nil && !strings.Contains(err.Error(), "service team-a/"+tc.service+":") {
			t.Errorf("%s: the error does not name the Service: %v", tc.service, err)
		}
	}
	for _, s := range []string{"manual", "elsewhere"} {
		if _, err := k.addresses(context.Background(), serviceKey{namespace: "team-a", name: s, port: 9090}); !errors.Is(err, errServiceRefused) {
			t.Errorf("%s: err = %v, want errServiceRefused", s, err)
		}
	}
}

// A prometheus target with Kubernetes access writes to the Service's ready
// Pod, whatever DNS would say of the Service's name, with the name as the
// Host; a Service that cannot be used fails the write with reason
// "service", before anything is dialed.
func TestServiceTargetDialsPods(t *testing.T) {
	var mu sync.Mutex
	var hosts []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		hosts = append(hosts, r.Host+r.URL.Path)
		mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	_, portStr, _ := net.SplitHostPort(srv.Listener.Addr().String())
	port, _ := strconv.Atoi(portStr)

	app := map[string]string{"app": "prom"}
	external := testService("team-a", "elsewhere", app, 9090, intstr.FromInt(port))
	external.Spec.Type = corev1.ServiceTypeExternalName
	s := testSettings(t)
	s.services = newKubeServices(fake.NewSimpleClientset(
		testService("team-a", "prom", app, 9090, intstr.FromInt(port)),
		external,
		testPod("team-a", "ready", "127.0.0.1", app, int32(port)),
	))
	write := func(service string) error {
		t.Helper()
		rw := &tenancy.RemoteWrite{Namespace: "team-a", Object: tenancy.ObjectRef{Name: "copy", Source: tenancy.SourceKubernetes},
			Spec: &v1alpha1.RemoteWriteSpec{Target: &v1alpha1.RemoteWriteTargetSpec{Type: v1alpha1.TargetPrometheus, Prometheus: &v1alpha1.PrometheusTarget{ServiceName: service, ServicePort: 9090}}}}
		tg, err := s.newTarget(rw, nil)
		if err != nil {
			t.Fatal(err)
		}
		if want := "prometheus http://" + service + ".team-a.svc:9090/api/v1/write"; tg.id != want {
			t.Errorf("target id %q, want %q", tg.id, want)
		}
		return testBatchTarget(t, tg).send(context.Background(), testBatch())
	}
	if err := write("prom"); err != nil {
		t.Fatal(err)
	}
	err := write("elsewhere")
	var te *targetError
	if !errors.As(err, &te) || te.reason != "service" || te.drop || !errors.Is(err, errServiceRefused) {
		t.Errorf("ExternalName Service: err = %#v, want a targetError with reason service, not dropped", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(hosts) != 1 || hosts[0] != "prom.team-a.svc:9090/api/v1/write" {
		t.Errorf("requests the Pod got: %v, want one for prom.team-a.svc:9090/api/v1/write", hosts)
	}
}

// Without Kubernetes access, a tenant's own object cannot name a Service:
// only DNS would resolve it. An object from the admin's files uses
// service_address.
func TestServiceTargetWithoutKubernetes(t *testing.T) {
	s := testSettings(t)
	s.serviceAddress = "{service}.{namespace}.svc:{port}"
	spec := &v1alpha1.RemoteWriteSpec{Target: &v1alpha1.RemoteWriteTargetSpec{Type: v1alpha1.TargetPushgateway, Pushgateway: &v1alpha1.PushgatewayTarget{ServiceName: "pgw", ServicePort: 9091, JobName: "copy"}}}
	_, err := s.newTarget(&tenancy.RemoteWrite{Namespace: "team-a", Object: tenancy.ObjectRef{Name: "copy", Source: tenancy.SourceKubernetes}, Spec: spec}, nil)
	if !errors.Is(err, errServiceNeedsKubernetes) {
		t.Errorf("object from Kubernetes without kubernetes access: err = %v, want errServiceNeedsKubernetes", err)
	}
	tg, err := s.newTarget(&tenancy.RemoteWrite{Namespace: "team-a", Object: tenancy.ObjectRef{Name: "copy", Source: "/etc/tenants/a.yaml"}, Spec: spec}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if want := "pushgateway http://pgw.team-a.svc:9091/metrics/job@base64/Y29weQ=="; tg.id != want {
		t.Errorf("target id %q, want %q", tg.id, want)
	}
}
