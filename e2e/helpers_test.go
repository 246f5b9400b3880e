package e2e

import (
	"os"
	"testing"

	"github.com/prom-tenant/caddy-prom-tenant/internal/testenv"
)

func freePort(t *testing.T) int { return testenv.FreePort(t) }

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, to, string(b))
}

// writeFile replaces a file atomically, as a ConfigMap update does.
func writeFile(t *testing.T, path, content string) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}
