package remotewrite

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/prom-tenant/caddy-prom-tenant/tenancy"
)

// A tenant's copying objects past max_copies_per_tenant, by name, are not
// copied, and their status says why; another tenant is not affected.
func TestMaxCopiesPerTenant(t *testing.T) {
	dir := t.TempDir()
	var docs []string
	for i := range 4 {
		docs = append(docs, fmt.Sprintf(`apiVersion: observability.ethos.io/v1alpha1
kind: MetricAccess
metadata: {name: copy-%d, namespace: team-a}
spec:
  metrics: [up]
  remoteWrite:
    enabled: true
    target: {type: remote_write, remoteWrite: {url: "http://192.0.2.1/api/v1/write"}}
`, i))
	}
	docs = append(docs, `apiVersion: observability.ethos.io/v1alpha1
kind: MetricAccess
metadata: {name: copy, namespace: team-b}
spec:
  metrics: [up]
  remoteWrite:
    enabled: true
    target: {type: remote_write, remoteWrite: {url: "http://192.0.2.1/api/v1/write"}}
`)
	if err := os.WriteFile(filepath.Join(dir, "tenants.yaml"), []byte(strings.Join(docs, "---\n")), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	ten := &tenancy.App{Directory: &tenancy.DirectorySource{Path: dir}}
	if err := ten.Provision(ctx); err != nil {
		t.Fatal(err)
	}
	// No URL is allowed, so the copiers that run stop at their target
	// (no network); the refused ones never get that far.
	a := &App{
		MaxCopiesPerTenant: 2, Interval: caddy.Duration(time.Minute), Shards: 1,
		registry: ten.Registry(),
		cfg:      &settings{targets: testSettings(t), logger: zap.NewNop()},
		logger:   zap.NewNop(),
		held:     map[string]*copier{},
	}
	a.syncLocked()
	defer func() {
		for key := range a.held {
			_, _ = process.copiers.Delete(key)
		}
	}()
	errs := map[string]string{}
	deadline := time.Now().Add(10 * time.Second)
	for len(errs) < 5 && time.Now().Before(deadline) {
		for _, c := range a.held {
			if s := c.Status(); s.LastError != "" {
				errs[s.Namespace+"/"+s.Object] = s.LastError
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	for obj, copied := range map[string]bool{"team-a/copy-0": true, "team-a/copy-1": true, "team-a/copy-2": false, "team-a/copy-3": false, "team-b/copy": true} {
		refused := strings.Contains(errs[obj], "max_copies_per_tenant is 2")
		switch {
		case errs[obj] == "":
			t.Errorf("%s: no status error", obj)
		case copied && refused:
			t.Errorf("%s is refused: %s", obj, errs[obj])
		case !copied && (!refused || !strings.Contains(errs[obj], "has 4 copying MetricAccess objects")):
			t.Errorf("%s: status error %q, want it refused by max_copies_per_tenant", obj, errs[obj])
		case copied && !strings.Contains(errs[obj], "not permitted"):
			t.Errorf("%s: status error %q, want the target's", obj, errs[obj])
		}
	}
}
