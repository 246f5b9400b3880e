package tenancy

import (
	"os"
	"testing"
)

func TestRegistryEmpty(t *testing.T) {
	var nilReg *Registry
	for _, r := range []*Registry{nilReg, new(Registry)} {
		if _, ok := r.Lookup("a"); ok {
			t.Error("empty registry found a tenant")
		}
		if len(r.Tenants()) != 0 {
			t.Error("empty registry has tenants")
		}
	}
}

func TestRegistryReplace(t *testing.T) {
	var r Registry
	a, b := &Tenant{Namespace: "a"}, &Tenant{Namespace: "b"}
	r.replace(map[string]*Tenant{"b": b, "a": a})
	if got, ok := r.Lookup("b"); !ok || got != b {
		t.Fatalf("Lookup(b) = %v, %v", got, ok)
	}
	if ts := r.Tenants(); len(ts) != 2 || ts[0] != a || ts[1] != b {
		t.Fatalf("Tenants() = %v, want sorted [a b]", ts)
	}
	r.replace(map[string]*Tenant{"a": a})
	if _, ok := r.Lookup("b"); ok {
		t.Fatal("b survived replace")
	}
}

// The shipped example manifests must load cleanly.
func TestExampleManifests(t *testing.T) {
	const dir = "../examples/tenants"
	if _, err := os.Stat(dir); err != nil {
		t.Skip(err)
	}
	s := newTestSource(t, dir)
	if errs := s.Errors(); len(errs) != 0 {
		t.Fatalf("errors: %v", errs)
	}
	for _, ns := range []string{"team-a", "team-b"} {
		if _, ok := s.reg.Lookup(ns); !ok {
			t.Errorf("%s missing", ns)
		}
	}
	t.Log("\n" + s.policies())
}
