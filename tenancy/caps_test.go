package tenancy

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prom-tenant/caddy-prom-tenant/rewrite"
	"github.com/prom-tenant/caddy-prom-tenant/tenancy/v1alpha1"
)

// jobPatterns returns n patterns {job="j<i>"}, quoted for a manifest.
func jobPatterns(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf(`'{job="j%d"}'`, i)
	}
	return out
}

func TestPatternsPerObjectCap(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "a.yaml", manifest("team-a", "at-cap", jobPatterns(v1alpha1.MaxPatternsPerObject)...))
	writeFile(t, dir, "b.yaml", manifest("team-b", "over-cap", jobPatterns(v1alpha1.MaxPatternsPerObject+1)...))
	s := newTestSource(t, dir)
	if _, ok := s.reg.Lookup("team-a"); !ok {
		t.Errorf("team-a, at the cap, is not a tenant: %v", s.Errors())
	}
	if _, ok := s.reg.Lookup("team-b"); ok {
		t.Error("team-b, over the cap, is a tenant")
	}
	wantErrContains(t, s.Errors()[filepath.Join(dir, "b.yaml")],
		"team-b/over-cap: spec.metrics: 257 patterns, at most 256 allowed per MetricAccess")
}

func TestPatternsPerNamespaceCap(t *testing.T) {
	dir := t.TempDir()
	// Four objects at the per-object cap: 1024, the default per-namespace cap.
	var docs []string
	for i := range 4 {
		docs = append(docs, manifest("team-a", fmt.Sprintf("part-%d", i), jobPatterns(v1alpha1.MaxPatternsPerObject)...))
	}
	writeFile(t, dir, "a.yaml", strings.Join(docs, "---\n"))
	writeFile(t, dir, "b.yaml", manifest("team-b", "app", "up"))
	s := newTestSource(t, dir)
	if _, ok := s.reg.Lookup("team-a"); !ok {
		t.Fatalf("team-a, at the cap, is not a tenant: %v", s.Errors())
	}

	// One more pattern, in another file: the whole namespace is out, both
	// files say why, and the other tenant is untouched.
	writeFile(t, dir, "a2.yaml", manifest("team-a", "one-more", "up"))
	s.mustScan(t, true)
	if _, ok := s.reg.Lookup("team-a"); ok {
		t.Error("team-a, over the cap, is still a tenant")
	}
	for _, f := range []string{"a.yaml", "a2.yaml"} {
		wantErrContains(t, s.Errors()[filepath.Join(dir, f)],
			"namespace team-a: its MetricAccess objects hold 1025 patterns together, more than the 1024 allowed per namespace",
			"max_patterns_per_namespace")
	}
	if _, ok := s.Errors()[filepath.Join(dir, "b.yaml")]; ok {
		t.Errorf("b.yaml has an error: %v", s.Errors())
	}
	s.wantPolicies(t, `team-b: {__name__="up"}`)
}

func TestPatternsPerNamespaceCapConfigured(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "a.yaml", manifest("team-a", "app", "a", "b", "c"))
	app := &App{Directory: &DirectorySource{Path: dir}, MaxPatternsPerNamespace: 2}
	if err := app.Provision(newTestContext(t)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = app.Cleanup() })
	if _, ok := app.Registry().Lookup("team-a"); ok {
		t.Error("team-a, over a cap of 2, is a tenant")
	}
	wantErrContains(t, app.Directory.Errors()[filepath.Join(dir, "a.yaml")], "hold 3 patterns together, more than the 2 allowed")
	if err := (&App{Directory: &DirectorySource{Path: dir}, MaxPatternsPerNamespace: -1}).Validate(); err == nil {
		t.Error("a negative max_patterns_per_namespace is valid")
	}
}

// holdCompiles makes every compile of namespace ns wait until the returned
// release is called; other namespaces compile as usual.
func holdCompiles(t *testing.T, ns string) (started <-chan struct{}, release func()) {
	t.Helper()
	gate, start := make(chan struct{}), make(chan struct{}, 16)
	orig := compileNamespace
	compileNamespace = func(n string, objs []*v1alpha1.MetricAccess) (*rewrite.Policy, error) {
		if n == ns {
			start <- struct{}{}
			<-gate
		}
		return orig(n, objs)
	}
	released := false
	release = func() {
		if !released {
			released = true
			close(gate)
		}
	}
	t.Cleanup(func() { release(); compileNamespace = orig })
	return start, release
}

// TestEditWhileOtherNamespaceCompiles: tenant A's file at the per-namespace
// cap is compiling (held back here, so the test does not depend on how fast
// the compile is); an edit of tenant B takes effect meanwhile, A keeps its
// previous policy until its compile is done, and then A's new one is in force.
func TestEditWhileOtherNamespaceCompiles(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "a.yaml", manifest("team-a", "app", "up"))
	writeFile(t, dir, "b.yaml", manifest("team-b", "app", "before"))
	s := newTestSource(t, dir)

	started, release := holdCompiles(t, "team-a")
	var docs []string
	for i := range 4 {
		docs = append(docs, manifest("team-a", fmt.Sprintf("part-%d", i), jobPatterns(v1alpha1.MaxPatternsPerObject)...))
	}
	writeFile(t, dir, "a.yaml", strings.Join(docs, "---\n"))
	scanned := make(chan bool)
	go func() { scanned <- s.scan() }()
	select {
	case <-scanned:
	case <-time.After(10 * time.Second): // a deadline for a hang, not a timing assertion
		t.Fatal("the scan waits for team-a's compile")
	}
	<-started

	writeFile(t, dir, "b.yaml", manifest("team-b", "app", "after"))
	go func() { scanned <- s.scan() }()
	select {
	case <-scanned:
	case <-time.After(10 * time.Second):
		t.Fatal("team-b's edit waits for team-a's compile")
	}
	s.tenants.waitNamespace("team-b")
	s.wantPolicies(t, `team-a: {__name__="up"}`, `team-b: {__name__="after"}`)
	if c := s.tenants.compilingNamespaces(); !c["team-a"] || len(c) != 1 {
		t.Errorf("compiling: %v, want team-a only", c)
	}

	ch := s.reg.Changed()
	release()
	<-ch
	a, ok := s.reg.Lookup("team-a")
	if !ok || len(a.Objects) != 4 || len(a.Policy.Branches()) == 0 {
		t.Fatalf("team-a after its compile: %+v, %v", a, ok)
	}
	if b, _ := s.reg.Lookup("team-b"); b.Policy.String() != `{__name__="after"}` {
		t.Errorf("team-b = %s", b.Policy)
	}
}

// TestReloadSharesCompiles: a second config over the same objects (a
// reload) finds them compiled; one that changes a namespace keeps serving
// the running config's tenant for it while the new version compiles.
func TestReloadSharesCompiles(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "a.yaml", manifest("team-a", "app", "up"))
	writeFile(t, dir, "b.yaml", manifest("team-b", "app", "b"))
	serveDirectory(t, dir)

	// Any compile of team-b now would hang: the reload must not need one.
	_, release := holdCompiles(t, "team-b")
	writeFile(t, dir, "a.yaml", manifest("team-a", "app", "up", "more"))
	_, releaseA := holdCompiles(t, "team-a")
	second := &App{Directory: &DirectorySource{Path: dir}}
	provisioned := make(chan error)
	go func() { provisioned <- second.Provision(newTestContext(t)) }()
	select {
	case err := <-provisioned:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the reload waits for a compile")
	}
	t.Cleanup(func() { _ = second.Cleanup() })
	if b, ok := second.Registry().Lookup("team-b"); !ok || b.Policy.String() != `{__name__="b"}` {
		t.Errorf("team-b in the new config = %v, %v", b, ok)
	}
	if a, ok := second.Registry().Lookup("team-a"); !ok || a.Policy.String() != `{__name__="up"}` {
		t.Errorf("team-a in the new config while it compiles = %v, %v; want the running config's", a, ok)
	}
	releaseA()
	release()
	second.tenants.wait(false)
	if a, _ := second.Registry().Lookup("team-a"); a.Policy.String() != `{__name__=~"more|up"}` {
		t.Errorf("team-a after its compile = %s", a.Policy)
	}
}

// BenchmarkCompileNamespace compiles one namespace of n patterns {job="jN"}
// in objects of at most MaxPatternsPerObject: the per-namespace cost the
// caps bound. 10,000 is past the default cap (max_patterns_per_namespace
// raises it).
func BenchmarkCompileNamespace(b *testing.B) {
	for _, n := range []int{100, 1000, 10000} {
		var objs []*v1alpha1.MetricAccess
		for i := 0; i < n; i += v1alpha1.MaxPatternsPerObject {
			pats := make([]string, 0, v1alpha1.MaxPatternsPerObject)
			for j := i; j < min(n, i+v1alpha1.MaxPatternsPerObject); j++ {
				pats = append(pats, fmt.Sprintf(`{job="j%d"}`, j))
			}
			objs = append(objs, newMA("a", fmt.Sprintf("part-%03d", i/v1alpha1.MaxPatternsPerObject), pats...))
		}
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			for b.Loop() {
				if _, err := CompileNamespace("a", objs); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func TestManifestSizeCap(t *testing.T) {
	dir := t.TempDir()
	big := manifest("team-a", "app", "up") + "# " + strings.Repeat("x", maxManifestBytes) + "\n"
	writeFile(t, dir, "a.yaml", big)
	writeFile(t, dir, "b.yaml", manifest("team-b", "app", "up"))
	s := newTestSource(t, dir)
	if _, ok := s.reg.Lookup("team-a"); ok {
		t.Error("an oversized file was read")
	}
	wantErrContains(t, s.Errors()[filepath.Join(dir, "a.yaml")], "at most 1048576 (1 MiB) allowed: split its objects over several files")
	s.wantPolicies(t, `team-b: {__name__="up"}`)
}
