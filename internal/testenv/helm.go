package testenv

import (
	"os"
	"path/filepath"
	"testing"

	"sigs.k8s.io/yaml"
)

// EnvHelm is the path of a helm binary (make test sets it to what
// scripts/build-helm.sh built).
const EnvHelm = "PROM_TENANT_HELM"

// HelmBinary returns $PROM_TENANT_HELM, failing t (or skipping it outside
// end-to-end runs) when it is not set.
func HelmBinary(t testing.TB) string {
	t.Helper()
	RequireE2E(t)
	bin := os.Getenv(EnvHelm)
	if bin == "" {
		t.Fatalf("%s is not set: run scripts/build-helm.sh and set it to the path it prints (make test does)", EnvHelm)
	}
	return bin
}

// ChartAppVersion is the Helm chart's appVersion: the tag make image gives
// the image, and the one the chart's Deployment pulls by default.
func ChartAppVersion(t testing.TB) string {
	t.Helper()
	var c struct {
		AppVersion string `json:"appVersion"`
	}
	b, err := os.ReadFile(filepath.Join(RepoRoot(), "deploy", "helm", "prom-tenant", "Chart.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, &c); err != nil || c.AppVersion == "" {
		t.Fatalf("Chart.yaml: no appVersion (%v)", err)
	}
	return c.AppVersion
}
