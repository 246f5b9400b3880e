package tenancy

import (
	"context"
	"path/filepath"
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

// Running follows the config that serves: the new app after a reload, the
// old one again when the new config's start failed and it was stopped.
func TestRunningAcrossReloads(t *testing.T) {
	dir := t.TempDir()
	start := func() *App {
		t.Helper()
		ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
		t.Cleanup(cancel)
		a := &App{Directory: &DirectorySource{Path: dir}}
		if err := a.Provision(ctx); err != nil {
			t.Fatal(err)
		}
		if err := a.Start(); err != nil {
			t.Fatal(err)
		}
		return a
	}
	old := start()
	failed := start()
	if Running() != failed {
		t.Fatal("the app started last is not running")
	}
	_ = failed.Stop() // its config did not start: the old one serves on
	if Running() != old {
		t.Fatalf("after the failed reload: Running() = %p, want the old app %p", Running(), old)
	}
	next := start()
	_ = old.Stop() // a reload that worked
	if Running() != next || next.previous.Load() != nil {
		t.Fatalf("after a reload: Running() = %p (want %p), previous %p (want none)", Running(), next, next.previous.Load())
	}
	_ = next.Stop()
	if Running() != nil {
		t.Errorf("all stopped: Running() = %p", Running())
	}
}
