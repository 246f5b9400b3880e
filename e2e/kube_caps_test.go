package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/prom-tenant/caddy-prom-tenant/internal/testenv"
)

// jobPatternList is a YAML flow list of n patterns {job="<prefix><i>"}.
func jobPatternList(prefix string, n int) string {
	ps := make([]string, n)
	for i := range ps {
		ps[i] = fmt.Sprintf(`'{job="%s%d"}'`, prefix, i)
	}
	return "[" + strings.Join(ps, ", ") + "]"
}

// TestPatternCapsKubernetes: the API server refuses a MetricAccess over the
// CRD's maxItems, and a namespace over max_patterns_per_namespace is no
// tenant, each of its objects saying why in its Ready condition, until it
// is back under the cap.
func TestPatternCapsKubernetes(t *testing.T) {
	e := newKubeEnv(t, testenv.SharedKubeAPIServer(t))
	e.namespace(t, "team-cap")

	manifest := metricAccess("team-cap", "too-long", jobPatternList("j", 257))
	err := e.create(t, manifest)
	if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "spec.metrics") || !strings.Contains(err.Error(), "256") {
		t.Fatalf("a MetricAccess with 257 patterns: %v, want the API server's refusal naming spec.metrics and 256", err)
	}
	if err := e.create(t, metricAccess("team-cap", "at-cap", jobPatternList("j", 256))); err != nil {
		t.Fatalf("a MetricAccess with 256 patterns: %v", err)
	}

	p := startProxyWith(t, testenv.SharedPrometheus(t),
		"kubernetes {\n\t\t\tkubeconfig "+e.api.Kubeconfig+"\n\t\t\tnamespaces team-cap\n\t\t}\n\t\tmax_patterns_per_namespace 257", "")
	status := func() int {
		s, _, _ := do(t, request(t, "GET", p.url+"/api/v1/query?query=up", "team-cap", ""))
		return s
	}
	eventually(t, "team-cap at 256 patterns is a tenant", 30*time.Second, func() bool { return status() == 200 })
	eventually(t, "Ready=True on team-cap/at-cap", 10*time.Second, func() bool {
		c := e.readyCondition(t, "team-cap", "at-cap")
		return c != nil && c.Status == metav1.ConditionTrue
	})

	e.apply(t, metricAccess("team-cap", "two-more", "[up, process_cpu_seconds_total]"))
	for _, name := range []string{"at-cap", "two-more"} {
		eventually(t, "TooManyPatterns on team-cap/"+name, 10*time.Second, func() bool {
			c := e.readyCondition(t, "team-cap", name)
			return c != nil && c.Status == metav1.ConditionFalse && c.Reason == "TooManyPatterns" &&
				strings.Contains(c.Message, "hold 258 patterns together, more than the 257 allowed per namespace") &&
				strings.Contains(c.Message, "max_patterns_per_namespace")
		})
	}
	if s := status(); s != 403 {
		t.Errorf("team-cap over the cap: %d, want 403 (unknown tenant)", s)
	}

	if err := e.dyn.Resource(metricAccesses).Namespace("team-cap").Delete(t.Context(), "two-more", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "team-cap back under the cap", 10*time.Second, func() bool { return status() == 200 })
	eventually(t, "Ready=True on team-cap/at-cap again", 10*time.Second, func() bool {
		c := e.readyCondition(t, "team-cap", "at-cap")
		return c != nil && c.Status == metav1.ConditionTrue
	})
}
