package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/prom-tenant/caddy-prom-tenant/internal/testenv"
)

// TestRemoteWriteKubernetesStatus copies from MetricAccess objects of the
// Kubernetes API and checks that each object's status.remoteWrite says how
// the copy stands (what `kubectl get ma` shows in its columns), next to the
// tenancy source's Ready condition, which the status writes leave alone.
func TestRemoteWriteKubernetesStatus(t *testing.T) {
	e := newKubeEnv(t, testenv.SharedKubeAPIServer(t))
	src := startSource(t, new(exposition))
	recv := emptyPrometheus(t)
	for _, ns := range []string{"team-j", "team-k"} {
		e.namespace(t, ns)
	}
	copyTo := func(ns, url string) string {
		return fmt.Sprintf(metricAccessTemplate, "copy", ns, `["app_requests_total"]`, fmt.Sprintf(`  remoteWrite:
    enabled: true
    interval: 5s
    remoteWrite: {url: "%s/api/v1/write"}
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
		return sent > 0 && rw["copiedUntil"] != nil && rw["lastError"] == nil
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
	for _, ns := range []string{"team-j", "team-k"} {
		if c := e.readyCondition(t, ns, "copy"); c == nil || c.Status != metav1.ConditionTrue {
			t.Errorf("%s: the Ready condition is gone or false after the remote-write status writes: %+v", ns, c)
		}
	}
	// The admin route and the object agree on the target.
	if s := oneStatus(t, caddy, "team-k"); s.Target != rw["target"] || s.Source != "kubernetes" {
		t.Errorf("admin status %+v", s)
	}
}
