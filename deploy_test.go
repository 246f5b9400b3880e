package promtenant

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/caddyserver/caddy/v2"
	corev1 "k8s.io/api/core/v1"

	"github.com/prom-tenant/caddy-prom-tenant/tenancy"
)

// TestDeployConfigMaps checks what deploy/kubernetes/configmap.yaml ships:
// its Caddyfile adapts with prom-tenant's modules, and its tenant manifests
// load through the directory source with no error.
func TestDeployConfigMaps(t *testing.T) {
	objs := manifests(t, "deploy/kubernetes/configmap.yaml")
	var config, tenants corev1.ConfigMap
	decodeStrict(t, objs, "ConfigMap/prom-tenant-config", &config)
	decodeStrict(t, objs, "ConfigMap/prom-tenant-tenants", &tenants)
	if config.Data["Caddyfile"] == "" {
		t.Fatal("no Caddyfile in prom-tenant-config")
	}
	adaptCaddyfile(t, "configmap.yaml", config.Data["Caddyfile"])
	if len(tenants.Data) == 0 {
		t.Fatal("no tenants in prom-tenant-tenants")
	}
	loaded, errs := loadTenantFiles(t, tenants.Data)
	if len(errs) > 0 {
		t.Errorf("shipped tenants do not load: %v", errs)
	}
	if len(loaded) == 0 {
		t.Error("shipped tenants compile to no tenant")
	}
}

// loadTenantFiles writes a tenants ConfigMap's files (name: content) into a
// directory, as the pod mounts it, and loads it with the directory source:
// the tenants it compiles to and the files' errors (by file).
func loadTenantFiles(t *testing.T, files map[string]string) ([]*tenancy.Tenant, map[string]error) {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	src := &tenancy.DirectorySource{Path: dir}
	app := &tenancy.App{Directory: src}
	if err := app.Provision(ctx); err != nil {
		t.Fatal(err)
	}
	return app.Registry().Tenants(), src.Errors()
}
