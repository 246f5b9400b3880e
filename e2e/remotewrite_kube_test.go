package e2e

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/prom-tenant/caddy-prom-tenant/internal/testenv"
	"github.com/prom-tenant/caddy-prom-tenant/remotewrite"
)

// TestRemoteWriteKubernetesStatus copies from MetricAccess objects of the
// Kubernetes API and checks that each object's status.remoteWrite says how
// the copy stands (what `kubectl get ma` shows in its columns), next to the
// tenancy source's Ready condition, which the status writes leave alone.
func TestRemoteWriteKubernetesStatus(t *testing.T) {
	e := newKubeEnv(t, testenv.SharedKubeAPIServer(t))
	src := startSource(t, new(exposition))
	recv := emptyPrometheus(t)
	for _, ns := range []string{"team-j", "team-k", "prom-tenant-lease"} {
		e.namespace(t, ns)
	}
	copyTo := func(ns, url string) string {
		return fmt.Sprintf(metricAccessTemplate, "copy", ns, `["app_requests_total"]`, fmt.Sprintf(`  remoteWrite:
    enabled: true
    interval: 5s
    target: {type: remote_write, remoteWrite: {url: "%s/api/v1/write"}}
`, url))
	}
	e.apply(t, copyTo("team-k", recv.URL))
	e.apply(t, copyTo("team-j", "http://192.0.2.1")) // not in allow_url

	caddy := testenv.StartCaddy(t, fmt.Sprintf(`{
	admin 127.0.0.1:%d
	prom_tenancy {
		kubernetes {
			kubeconfig %s
			namespaces team-j team-k
		}
	}
	prom_remote_write %s {
		interval 5s
		read_delay 2s
		initial_lookback 1m
		allow_url %s
		kubernetes {
			kubeconfig %s
		}
		leader_election {
			namespace prom-tenant-lease
			name_prefix status-test
		}
	}
}
`, testenv.FreePort(t), e.api.Kubeconfig, src.URL, recv.URL, e.api.Kubeconfig))

	status := func(ns string) map[string]any {
		u, err := e.dyn.Resource(metricAccesses).Namespace(ns).Get(t.Context(), "copy", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		rw, _, _ := unstructured.NestedMap(u.Object, "status", "remoteWrite")
		return rw
	}
	eventually(t, "team-k's status shows samples sent", 60*time.Second, func() bool {
		rw := status("team-k")
		sent, _ := rw["samplesSent"].(int64)
		return sent > 0 && rw["copiedUntil"] != nil && rw["lastError"] == nil && rw["state"] == "copying"
	})
	rw := status("team-k")
	if rw["target"] != "remote_write "+recv.URL+"/api/v1/write" {
		t.Errorf("team-k status target %v", rw["target"])
	}
	copied, err := time.Parse(time.RFC3339, rw["copiedUntil"].(string))
	if err != nil || time.Since(copied) > time.Minute {
		t.Errorf("team-k copiedUntil %v (%v)", rw["copiedUntil"], err)
	}
	eventually(t, "team-j's status shows why it copies nothing", 30*time.Second, func() bool {
		msg, _ := status("team-j")["lastError"].(string)
		return msg != ""
	})
	if msg := status("team-j")["lastError"].(string); !strings.Contains(msg, "not permitted by the prom_remote_write allow_url list") {
		t.Errorf("team-j lastError %q", msg)
	}
	if rw := status("team-j"); rw["state"] != "refused" || rw["stateSince"] == nil {
		t.Errorf("team-j state %v since %v, want refused", rw["state"], rw["stateSince"])
	}
	for _, ns := range []string{"team-j", "team-k"} {
		if c := e.readyCondition(t, ns, "copy"); c == nil || c.Status != metav1.ConditionTrue {
			t.Errorf("%s: the Ready condition is gone or false after the remote-write status writes: %+v", ns, c)
		}
	}
	// The admin route and the object agree on the target.
	if s := oneStatus(t, caddy, "team-k"); s.Target != rw["target"] || s.Source != "kubernetes" {
		t.Errorf("admin status %+v", s)
	}
	// A receiver outage shows on the object while the writes are retried,
	// and clears once the receiver is back.
	recv.Stop()
	eventually(t, "team-k's status shows it retrying", 30*time.Second, func() bool {
		rw := status("team-k")
		msg, _ := rw["lastError"].(string)
		return rw["state"] == "retrying" && msg != ""
	})
	recv.Restart(t)
	eventually(t, "team-k's status shows it copying again", 60*time.Second, func() bool {
		rw := status("team-k")
		return rw["state"] == "copying" && rw["lastError"] == nil
	})
}

// TestRemoteWriteKubernetesServices copies to a tenant's own Prometheus by
// its Service, resolved through the API to the Service's ready Pod, and
// refuses the Services a tenant can point outside its namespace: an
// ExternalName naming another tenant's receiver, and a Service without a
// selector (whose endpoints the tenant writes itself). The other receiver
// must get nothing.
func TestRemoteWriteKubernetesServices(t *testing.T) {
	e := newKubeEnv(t, testenv.SharedKubeAPIServer(t))
	src := startSource(t, new(exposition))
	own, victim := emptyPrometheus(t), emptyPrometheus(t)
	ownPort := strings.TrimPrefix(own.Addr, "127.0.0.1:")
	victimPort := strings.TrimPrefix(victim.Addr, "127.0.0.1:")
	const ns = "team-s"
	e.namespace(t, ns)
	e.namespace(t, "prom-tenant-lease")
	e.servicePod(t, ns, "prometheus", ownPort)
	e.service(t, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "elsewhere"},
		Spec:       corev1.ServiceSpec{Type: corev1.ServiceTypeExternalName, ExternalName: "localhost"},
	})
	e.service(t, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "manual"},
		Spec:       corev1.ServiceSpec{Ports: []corev1.ServicePort{{Port: 9090}}},
	})
	copyTo := func(name, service, port string) string {
		return fmt.Sprintf(metricAccessTemplate, name, ns, `["app_requests_total"]`, fmt.Sprintf(`  remoteWrite:
    enabled: true
    interval: 5s
    target: {type: prometheus, prometheus: {serviceName: %s, servicePort: %s}}
`, service, port))
	}
	e.apply(t, copyTo("own", "prometheus", "9090"))
	e.apply(t, copyTo("external-name", "elsewhere", victimPort))
	e.apply(t, copyTo("selectorless", "manual", "9090"))

	caddy := testenv.StartCaddy(t, fmt.Sprintf(`{
	admin 127.0.0.1:%d
	prom_tenancy {
		kubernetes {
			kubeconfig %s
			namespaces %s
		}
	}
	prom_remote_write %s {
		interval 5s
		read_delay 2s
		initial_lookback 1m
		kubernetes {
			kubeconfig %s
		}
		leader_election {
			namespace prom-tenant-lease
			name_prefix services-test
		}
	}
}
`, testenv.FreePort(t), e.api.Kubeconfig, ns, src.URL, e.api.Kubeconfig))

	byObject := func() map[string]remotewrite.Status {
		out := map[string]remotewrite.Status{}
		for _, s := range rwStatus(t, caddy, ns) {
			out[s.Object] = s
		}
		return out
	}
	// The source scrapes every second: 12s of copy are enough samples to compare.
	enough := time.Now().Add(12 * time.Second)
	eventually(t, "the own copy is 12s on and both escapes have failed", 60*time.Second, func() bool {
		s := byObject()
		return s["own"].CopiedUntil.After(enough) && s["external-name"].LastError != "" && s["selectorless"].LastError != ""
	})
	s := byObject()
	if want := "prometheus http://prometheus." + ns + ".svc:9090/api/v1/write"; s["own"].Target != want || s["own"].LastError != "" {
		t.Errorf("own copy: target %q (want %q), error %q", s["own"].Target, want, s["own"].LastError)
	}
	assertExactCopy(t, newAPI(t, src.URL, ""), newAPI(t, own.URL, ""), `{__name__="app_requests_total",namespace="team-s"}`, relabel{}, s["own"].CopiedUntil)
	for obj, want := range map[string]string{"external-name": "ExternalName", "selectorless": "no selector"} {
		if msg := s[obj].LastError; !strings.Contains(msg, "service "+ns+"/") || !strings.Contains(msg, want) {
			t.Errorf("%s: lastError %q, want the Service refused for %q", obj, msg, want)
		}
		if s[obj].SamplesSent != 0 {
			t.Errorf("%s: %d samples sent", obj, s[obj].SamplesSent)
		}
	}
	v, _, _, err := newAPI(t, victim.URL, "").Query(t.Context(), `count({namespace="team-s"})`, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if vec, ok := v.(model.Vector); !ok || len(vec) != 0 {
		t.Errorf("the receiver behind the ExternalName holds team-s series: %v", v)
	}
}

// service creates svc.
func (e *kubeEnv) service(t *testing.T, svc *corev1.Service) {
	t.Helper()
	if _, err := e.client.CoreV1().Services(svc.Namespace).Create(t.Context(), svc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// servicePod makes Service name, port 9090, served by a ready Pod whose IP
// is this machine's loopback and whose target port is port: what the
// kubelet and the endpoint controllers would show for a local process.
func (e *kubeEnv) servicePod(t *testing.T, ns, name, port string) {
	t.Helper()
	p, err := strconv.Atoi(port)
	if err != nil {
		t.Fatal(err)
	}
	sel := map[string]string{"app": name}
	e.service(t, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: corev1.ServiceSpec{Selector: sel, Ports: []corev1.ServicePort{{
			Port: 9090, TargetPort: intstr.FromString("web"),
		}}},
	})
	// Pod admission needs the namespace's default ServiceAccount, which no
	// controller-manager creates here.
	_, err = e.client.CoreV1().ServiceAccounts(ns).Create(t.Context(), &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default"}}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	no := false
	pod, err := e.client.CoreV1().Pods(ns).Create(t.Context(), &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name + "-0", Labels: sel},
		Spec: corev1.PodSpec{
			AutomountServiceAccountToken: &no,
			Containers: []corev1.Container{{Name: "prometheus", Image: "prom/prometheus",
				Ports: []corev1.ContainerPort{{Name: "web", ContainerPort: int32(p)}}}},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	pod.Status = corev1.PodStatus{
		Phase: corev1.PodRunning, PodIP: "127.0.0.1", PodIPs: []corev1.PodIP{{IP: "127.0.0.1"}},
		Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}},
	}
	if _, err := e.client.CoreV1().Pods(ns).UpdateStatus(t.Context(), pod, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
}
