package testenv

import (
	"os"
	"testing"
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
