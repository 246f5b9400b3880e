package remotewrite

import (
	"context"
	"testing"

	"github.com/caddyserver/caddy/v2"

	"github.com/prom-tenant/caddy-prom-tenant/tenancy"
)

// TestOriginalTargets: each target of the original proxy's objects
// (tenancy/testdata/original) becomes the target its README describes: a
// Service of the tenant's namespace for prometheus and pushgateway, the URL
// with basic auth from the tenant's Secret and the headers for remote_write.
func TestOriginalTargets(t *testing.T) {
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	ten := &tenancy.App{Directory: &tenancy.DirectorySource{Path: "../tenancy/testdata/original"}}
	if err := ten.Provision(ctx); err != nil {
		t.Fatal(err)
	}
	s := testSettings(t, "https://external-prometheus.example.com/api/v1/write")
	s.serviceAddress = "{service}.{namespace}.svc:{port}"
	s.secrets = newKubeSecrets(nil)
	want := map[string]string{
		"debug-tenant":       "prometheus http://prometheus.debug-tenant.svc:9090/api/v1/write",
		"my-app-namespace":   "prometheus http://prometheus.my-app-namespace.svc:9090/api/v1/write",
		"secure-tenant":      "prometheus http://prometheus.secure-tenant.svc:9090/api/v1/write",
		"tenant-namespace":   "prometheus http://prometheus.tenant-namespace.svc:9090/api/v1/write",
		"pushgateway-tenant": "pushgateway http://pushgateway.pushgateway-tenant.svc:9091/metrics/job@base64/cmVtb3RlLXdyaXRlLW1ldHJpY3M=",
		"external-tenant":    "remote_write https://external-prometheus.example.com/api/v1/write",
	}
	n := 0
	for _, tn := range ten.Registry().Tenants() {
		for _, rw := range tn.RemoteWrites {
			n++
			rt, err := s.newTarget(rw, nil)
			if err != nil {
				t.Errorf("%s: %v", rw.Key(), err)
				continue
			}
			if rt.id != want[tn.Namespace] {
				t.Errorf("%s: target %q, want %q", rw.Key(), rt.id, want[tn.Namespace])
			}
		}
	}
	if n != len(want) {
		t.Errorf("%d copies, want %d", n, len(want))
	}

	// remote_write: the password is read from the Secret of the tenant's own
	// namespace, and the headers are sent.
	tn, _ := ten.Registry().Lookup("external-tenant")
	cfg, err := s.clientConfig("external-tenant", tn.RemoteWrites[0].Spec.Target.RemoteWrite)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.BasicAuth.Username != "monitoring-user" || cfg.BasicAuth.PasswordRef != "external-tenant/prometheus-auth/password" {
		t.Errorf("basic auth %+v", cfg.BasicAuth)
	}
	if h := cfg.HTTPHeaders.Headers["X-Tenant"]; len(h.Values) != 1 || h.Values[0] != "my-team" {
		t.Errorf("headers %+v", cfg.HTTPHeaders)
	}
}
