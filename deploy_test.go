package promtenant

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	corev1 "k8s.io/api/core/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"

	"github.com/prom-tenant/caddy-prom-tenant/tenancy"
)

// TestDeployConfigMaps checks what deploy/kubernetes/configmap.yaml ships:
// its Caddyfile adapts with prom-tenant's modules, and its tenant manifests
// load through the directory source with no error.
func TestDeployConfigMaps(t *testing.T) {
	raw, err := os.ReadFile("deploy/kubernetes/configmap.yaml")
	if err != nil {
		t.Fatal(err)
	}
	maps := map[string]map[string]string{}
	docs := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(raw)))
	for {
		doc, err := docs.Read()
		if err == io.EOF {
			break
		}
		var cm corev1.ConfigMap
		if err == nil {
			err = yaml.UnmarshalStrict(doc, &cm)
		}
		if err != nil {
			t.Fatalf("configmap.yaml: %v", err)
		}
		maps[cm.Name] = cm.Data
	}

	cfg := maps["prom-tenant-config"]["Caddyfile"]
	if cfg == "" {
		t.Fatal("no Caddyfile in prom-tenant-config")
	}
	adapter := caddyfile.Adapter{ServerType: httpcaddyfile.ServerType{}}
	if _, warnings, err := adapter.Adapt([]byte(cfg), nil); err != nil || len(warnings) > 0 {
		t.Fatalf("the shipped Caddyfile does not adapt: %v %v", err, warnings)
	}

	tenants := maps["prom-tenant-tenants"]
	if len(tenants) == 0 {
		t.Fatal("no tenants in prom-tenant-tenants")
	}
	dir := t.TempDir()
	for name, content := range tenants {
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
	if errs := src.Errors(); len(errs) > 0 {
		t.Errorf("shipped tenants do not load: %v", errs)
	}
	if len(app.Registry().Tenants()) == 0 {
		t.Error("shipped tenants compile to no tenant")
	}
}
