package e2e

import (
	"os/exec"
	"path/filepath"
	"testing"

	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/restmapper"

	"github.com/prom-tenant/caddy-prom-tenant/internal/testenv"
)

// TestChartApplies renders the Helm chart (deploy/helm/prom-tenant) with its
// default values and each ci/*.yaml and server-side dry-runs every object
// against the real API server, strictly: what `helm install` would send
// after the CRD. The CRD is installed first (newKubeEnv, from
// deploy/kubernetes/crd: make verify-generate keeps the chart's crds/ copy
// identical), the release namespace and the tenants' namespaces are created.
func TestChartApplies(t *testing.T) {
	helm := testenv.HelmBinary(t)
	e := newKubeEnv(t, testenv.SharedKubeAPIServer(t))
	mapper := restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(e.client.Discovery()))
	chart := filepath.Join(testenv.RepoRoot(), "deploy", "helm", "prom-tenant")
	values, _ := filepath.Glob(filepath.Join(chart, "ci", "*.yaml"))
	if len(values) < 3 {
		t.Fatalf("values files: %v", values)
	}
	for _, v := range append([]string{""}, values...) {
		args := []string{"template", "prom-tenant", chart, "--namespace", "prom-tenant"}
		if v != "" {
			args = append(args, "--values", v)
		}
		out, err := exec.Command(helm, args...).Output()
		if err != nil {
			t.Fatalf("helm %v: %v %s", args, err, stderrOf(err))
		}
		name := "helm template (defaults)"
		if v != "" {
			name = "helm template -f " + filepath.Base(v)
		}
		objs := parseObjects(t, name, out)
		if len(objs) < 10 {
			t.Fatalf("%s rendered %d objects", name, len(objs))
		}
		e.dryRun(t, mapper, name, objs)
	}
}

func stderrOf(err error) string {
	if ee, ok := err.(*exec.ExitError); ok {
		return string(ee.Stderr)
	}
	return ""
}
