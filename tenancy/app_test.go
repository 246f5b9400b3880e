package tenancy

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
)

func newTestContext(t *testing.T) caddy.Context {
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	t.Cleanup(cancel)
	return ctx
}

func TestAppProvisionLoadsSynchronously(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "a.yaml", manifest("team-a", "app", "up"))
	writeFile(t, dir, "broken.yaml", "spec: [") // logged, not fatal
	app := &App{Directory: &DirectorySource{Path: dir}}
	if err := app.Provision(newTestContext(t)); err != nil {
		t.Fatal(err)
	}
	if err := app.Validate(); err != nil {
		t.Fatal(err)
	}
	ten, ok := app.Registry().Lookup("team-a")
	if !ok || ten.Policy.String() != `{__name__="up"}` {
		t.Fatalf("team-a = %v, %v", ten, ok)
	}
	if _, ok := app.Directory.Errors()[filepath.Join(dir, "broken.yaml")]; !ok {
		t.Errorf("broken.yaml has no error: %v", app.Directory.Errors())
	}
	if got := time.Duration(app.Directory.ReloadInterval); got != DefaultReloadInterval {
		t.Errorf("default reload interval = %v", got)
	}
}

func TestAppProvisionMissingDirectory(t *testing.T) {
	app := &App{Directory: &DirectorySource{Path: filepath.Join(t.TempDir(), "nope")}}
	if err := app.Provision(newTestContext(t)); err == nil {
		t.Fatal("want error for a missing directory")
	}
}

func TestAppValidate(t *testing.T) {
	if err := (&App{}).Validate(); err == nil {
		t.Error("want error without a directory")
	}
	bad := &App{Directory: &DirectorySource{Path: "x", ReloadInterval: -1}}
	if err := bad.Validate(); err == nil {
		t.Error("want error for a negative reload interval")
	}
}

func TestAppModule(t *testing.T) {
	mod, err := caddy.GetModule(AppID)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := mod.New().(*App); !ok {
		t.Fatalf("module %s is %T", AppID, mod.New())
	}
}

// TestAppPolls exercises the real poll loop.
func TestAppPolls(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "a.yaml", manifest("team-a", "app", "up"))
	app := &App{Directory: &DirectorySource{Path: dir, ReloadInterval: caddy.Duration(10 * time.Millisecond)}}
	if err := app.Provision(newTestContext(t)); err != nil {
		t.Fatal(err)
	}
	if err := app.Start(); err != nil {
		t.Fatal(err)
	}
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			_ = app.Stop()
		}
	})

	writeFile(t, dir, "b.yaml", manifest("team-b", "app", "up"))
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, ok := app.Registry().Lookup("team-b"); ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("team-b did not appear")
		}
		time.Sleep(5 * time.Millisecond)
	}

	done := make(chan error)
	go func() { done <- app.Stop() }()
	select {
	case err := <-done:
		stopped = true
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Stop did not return")
	}
	if err := app.Stop(); err != nil { // idempotent
		t.Fatal(err)
	}
}

// runConfig makes a Caddy config of apps (module ID → app) the one Caddy
// serves, as a reload does, with the admin endpoint at admin ("" for none),
// and returns Load's error. Caddy stops when the test ends.
func runConfig(t *testing.T, admin string, apps map[string]any) error {
	t.Helper()
	adminCfg := map[string]any{"config": map[string]any{"persist": false}}
	if admin == "" {
		adminCfg["disabled"] = true
	} else {
		adminCfg["listen"] = admin
	}
	cfg, err := json.Marshal(map[string]any{"admin": adminCfg, "apps": apps})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = caddy.Stop() })
	return caddy.Load(cfg, true)
}

// serveDirectory makes a config with a prom_tenancy app over dir the one
// Caddy serves, and returns that app.
func serveDirectory(t *testing.T, dir string) *App {
	t.Helper()
	if err := runConfig(t, "", map[string]any{AppID: &App{Directory: &DirectorySource{Path: dir}}}); err != nil {
		t.Fatal(err)
	}
	a := serving()
	if a == nil {
		t.Fatal("no prom_tenancy app is serving after the config loaded")
	}
	return a
}

// failingApp is an app whose Start fails: a config holding it is provisioned
// and started, then refused by Caddy, which keeps serving the config before it.
type failingApp struct{}

// duringFailingStart, if set, runs in failingApp.Start: while the refused
// config is starting.
var duringFailingStart func()

func init() { caddy.RegisterModule(failingApp{}) }

func (failingApp) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: "prom_tenancy_test_failing", New: func() caddy.Module { return failingApp{} }}
}

func (failingApp) Start() error {
	if duringFailingStart != nil {
		duringFailingStart()
	}
	return errors.New("this app never starts")
}

func (failingApp) Stop() error { return nil }

// adminTenants returns the status of GET /prom_tenant/tenants on Caddy's
// admin endpoint at admin, and the namespaces in force it lists.
func adminTenants(t *testing.T, admin string) (int, []string) {
	t.Helper()
	resp, err := http.Get("http://" + admin + "/prom_tenant/tenants")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var v TenantsView
	if resp.StatusCode == http.StatusOK {
		if err := json.NewDecoder(resp.Body).Decode(&v); err != nil {
			t.Fatal(err)
		}
	}
	var out []string
	for _, ten := range v.Tenants {
		if ten.InForce {
			out = append(out, ten.Namespace)
		}
	}
	return resp.StatusCode, out
}

// The app that serves, for the admin route, the metrics and a new config's
// Provision, is the app of the config Caddy serves: the old one while a
// reload starts and after it failed, the new one once it has started.
func TestServingAcrossReloads(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	admin := ln.Addr().String()
	ln.Close()
	dirA, dirB := t.TempDir(), t.TempDir()
	writeFile(t, dirA, "a.yaml", manifest("team-a", "app", "up"))
	writeFile(t, dirB, "b.yaml", manifest("team-b", "app", "up"))
	tenancyOver := func(dir string) *App { return &App{Directory: &DirectorySource{Path: dir}} }
	wantAdmin := func(when string, status int, namespaces ...string) {
		t.Helper()
		if s, got := adminTenants(t, admin); s != status || !slices.Equal(got, namespaces) {
			t.Errorf("%s: admin route answers %d with tenants %v, want %d with %v", when, s, got, status, namespaces)
		}
	}

	if err := runConfig(t, admin, map[string]any{AppID: tenancyOver(dirA)}); err != nil {
		t.Fatal(err)
	}
	old := serving()
	if old == nil {
		t.Fatal("no app is serving after the first config")
	}
	wantAdmin("first config", http.StatusOK, "team-a")

	// A reload whose start fails: the old config serves on, and the admin
	// route says so while the new config starts and after it failed.
	starting := false
	duringFailingStart = func() {
		starting = true
		wantAdmin("while a reload starts", http.StatusOK, "team-a")
	}
	t.Cleanup(func() { duringFailingStart = nil })
	if err := runConfig(t, admin, map[string]any{AppID: tenancyOver(dirB), "prom_tenancy_test_failing": struct{}{}}); err == nil {
		t.Fatal("a config with an app that does not start loaded")
	}
	if !starting {
		t.Fatal("the failing app was not started")
	}
	if serving() != old {
		t.Errorf("after the failed reload: serving %p, want the old app %p", serving(), old)
	}
	wantAdmin("after a failed reload", http.StatusOK, "team-a")

	if err := runConfig(t, admin, map[string]any{AppID: tenancyOver(dirB)}); err != nil {
		t.Fatal(err)
	}
	if next := serving(); next == nil || next == old {
		t.Errorf("after a reload: serving %p, want the new app (not the old %p)", next, old)
	}
	wantAdmin("after a reload", http.StatusOK, "team-b")

	if err := caddy.Stop(); err != nil {
		t.Fatal(err)
	}
	if serving() != nil {
		t.Errorf("Caddy stopped: serving %p, want none", serving())
	}
	if status, _ := getTenants(t, "/prom_tenant/tenants"); status != http.StatusNotFound {
		t.Errorf("Caddy stopped: admin route answers %d, want 404", status)
	}
}
