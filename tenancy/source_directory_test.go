package tenancy

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/prom-tenant/caddy-prom-tenant/tenancy/v1alpha1"
)

// manifest returns one MetricAccess document.
func manifest(ns, name string, metrics ...string) string {
	return fmt.Sprintf("apiVersion: %s\nkind: %s\nmetadata:\n  name: %s\n  namespace: %s\nspec:\n  metrics: [%s]\n",
		v1alpha1.APIVersion, v1alpha1.Kind, name, ns, strings.Join(metrics, ", "))
}

func writeFile(t *testing.T, dir, name, content string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

type testSource struct {
	*DirectorySource
	reg  *Registry
	logs *observer.ObservedLogs
}

func newTestSource(t *testing.T, dir string) *testSource {
	t.Helper()
	core, logs := observer.New(zapcore.InfoLevel)
	s := &testSource{DirectorySource: &DirectorySource{Path: dir}, reg: new(Registry), logs: logs}
	if err := s.provision(zap.New(core), newTenantSet(s.reg, zap.New(core), DefaultMaxPatternsPerNamespace), nil); err != nil {
		t.Fatal(err)
	}
	s.tenants.wait(false)
	t.Cleanup(s.tenants.close)
	return s
}

// policies renders the registry as "ns: policy" lines.
func (s *testSource) policies() string {
	var lines []string
	for _, t := range s.reg.Tenants() {
		lines = append(lines, t.Namespace+": "+t.Policy.String())
	}
	return strings.Join(lines, "\n")
}

func (s *testSource) wantPolicies(t *testing.T, want ...string) {
	t.Helper()
	if got := s.policies(); got != strings.Join(want, "\n") {
		t.Fatalf("registry:\n%s\nwant:\n%s", got, strings.Join(want, "\n"))
	}
}

func (s *testSource) mustScan(t *testing.T, wantChanged bool) {
	t.Helper()
	if got := s.scan(); got != wantChanged {
		t.Fatalf("scan() = %v, want %v", got, wantChanged)
	}
	s.tenants.wait(false)
}

func TestDirectoryInitialLoad(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "team-a.yaml", manifest("team-a", "app", "up"))
	writeFile(t, dir, "team-b.yml", manifest("team-b", "http", "http_requests_total")+"---\n"+manifest("team-b", "api", "process_.*"))
	writeFile(t, dir, "README.md", manifest("ignored-md", "x", "up"))
	writeFile(t, dir, ".hidden.yaml", manifest("ignored-hidden", "x", "up"))
	writeFile(t, dir, "team-c.yaml.bak", manifest("ignored-bak", "x", "up"))
	if err := os.MkdirAll(filepath.Join(dir, "sub.yaml"), 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "sub.yaml"), "nested.yaml", manifest("ignored-nested", "x", "up"))

	s := newTestSource(t, dir)
	s.wantPolicies(t,
		`team-a: {__name__="up"}`,
		`team-b: {__name__=~"(?:(?s:process_.*))|(?:http_requests_total)"}`)
	tb, ok := s.reg.Lookup("team-b")
	if !ok {
		t.Fatal("team-b not found")
	}
	wantRefs := []ObjectRef{{"api", filepath.Join(dir, "team-b.yml")}, {"http", filepath.Join(dir, "team-b.yml")}}
	if !slices.Equal(tb.Objects, wantRefs) {
		t.Errorf("objects = %v, want %v", tb.Objects, wantRefs)
	}
	if _, ok := s.reg.Lookup("ignored-md"); ok {
		t.Error("non-YAML file was read")
	}
	if len(s.Errors()) != 0 {
		t.Errorf("unexpected errors: %v", s.Errors())
	}
	s.mustScan(t, false) // nothing changed
}

func TestDirectoryAddFile(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "a.yaml", manifest("team-a", "app", "up"))
	s := newTestSource(t, dir)
	if _, ok := s.reg.Lookup("team-c"); ok {
		t.Fatal("team-c exists before its file")
	}
	writeFile(t, dir, "c.yaml", manifest("team-c", "app", "node_.*"))
	s.mustScan(t, true)
	s.wantPolicies(t, `team-a: {__name__="up"}`, `team-c: {__name__=~"(?s:node_.*)"}`)

	// A second file for the same namespace adds to its policy.
	writeFile(t, dir, "d.yaml", manifest("team-c", "more", "up"))
	s.mustScan(t, true)
	s.wantPolicies(t, `team-a: {__name__="up"}`, `team-c: {__name__=~"(?:(?s:node_.*))|(?:up)"}`)
}

func TestDirectoryBrokenFileKeepsLastGood(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "a.yaml", manifest("team-a", "app", "up"))
	writeFile(t, dir, "b.yaml", manifest("team-b", "app", "up"))
	s := newTestSource(t, dir)

	// Break a.yaml in its second document; change b.yaml at the same time.
	writeFile(t, dir, "a.yaml", manifest("team-a", "app", "up", "node_cpu")+"---\n"+manifest("team-a", "other", "'http_('"))
	writeFile(t, dir, "b.yaml", manifest("team-b", "app", "down"))
	s.mustScan(t, true)
	s.wantPolicies(t, `team-a: {__name__="up"}`, `team-b: {__name__="down"}`)

	aPath := filepath.Join(dir, "a.yaml")
	errs := s.Errors()
	if len(errs) != 1 {
		t.Fatalf("errors = %v, want one for a.yaml", errs)
	}
	wantErrContains(t, errs[aPath], aPath+`: document 2: team-a/other: spec.metrics[0]: invalid regex "http_("`)
	logged := s.logs.FilterMessageSnippet("keeping its last good version").FilterField(zap.String("file", aPath)).All()
	if len(logged) != 1 {
		t.Fatalf("want one error log naming %s, got %v", aPath, s.logs.All())
	}
	if logged[0].Level != zapcore.ErrorLevel {
		t.Errorf("logged at %v", logged[0].Level)
	}

	// Unchanged broken file: no rebuild, no repeated log.
	s.mustScan(t, false)
	if n := s.logs.FilterMessageSnippet("keeping its last good version").Len(); n != 1 {
		t.Errorf("error logged %d times", n)
	}

	// Fixing it applies the new version and clears the error.
	writeFile(t, dir, "a.yaml", manifest("team-a", "app", "up", "node_cpu"))
	s.mustScan(t, true)
	s.wantPolicies(t, `team-a: {__name__=~"node_cpu|up"}`, `team-b: {__name__="down"}`)
	if len(s.Errors()) != 0 {
		t.Errorf("errors after fix: %v", s.Errors())
	}
}

func TestDirectoryBrokenNewFileContributesNothing(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "a.yaml", manifest("team-a", "app", "up"))
	writeFile(t, dir, "c.yaml", manifest("team-c", "good", "up")+"---\n"+manifest("team-c", "bad", "up")+"  bogus: 1\n")
	s := newTestSource(t, dir)
	s.wantPolicies(t, `team-a: {__name__="up"}`)
	cPath := filepath.Join(dir, "c.yaml")
	wantErrContains(t, s.Errors()[cPath], cPath+`: document 2: team-c/bad: unknown field "spec.bogus"`)
	if s.logs.FilterMessageSnippet("contributes nothing").FilterField(zap.String("file", cPath)).Len() != 1 {
		t.Errorf("missing error log for %s: %v", cPath, s.logs.All())
	}
}

func TestDirectoryDeleteFile(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "a.yaml", manifest("team-a", "app", "up"))
	writeFile(t, dir, "b.yaml", manifest("team-b", "app", "up"))
	writeFile(t, dir, "bad.yaml", "kind: [")
	s := newTestSource(t, dir)
	if len(s.Errors()) != 1 {
		t.Fatalf("errors = %v", s.Errors())
	}
	for _, f := range []string{"b.yaml", "bad.yaml"} {
		if err := os.Remove(filepath.Join(dir, f)); err != nil {
			t.Fatal(err)
		}
	}
	s.mustScan(t, true)
	s.wantPolicies(t, `team-a: {__name__="up"}`)
	if _, ok := s.reg.Lookup("team-b"); ok {
		t.Error("team-b still registered after its file was deleted")
	}
	if len(s.Errors()) != 0 {
		t.Errorf("errors of a deleted file remain: %v", s.Errors())
	}
}

func TestDirectoryDuplicateObject(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "b.yaml", manifest("team-a", "app", "from_b")+"---\n"+manifest("team-a", "other", "other_b"))
	writeFile(t, dir, "a.yaml", manifest("team-a", "app", "from_a"))
	s := newTestSource(t, dir)
	// b.yaml's duplicate is dropped; its other object still counts.
	s.wantPolicies(t, `team-a: {__name__=~"from_a|other_b"}`)
	aPath, bPath := filepath.Join(dir, "a.yaml"), filepath.Join(dir, "b.yaml")
	wantErrContains(t, s.Errors()[bPath], bPath, "team-a/app", aPath)
	if _, ok := s.Errors()[aPath]; ok {
		t.Errorf("the winning file has an error: %v", s.Errors()[aPath])
	}
	if s.logs.FilterMessageSnippet("duplicate MetricAccess").FilterField(zap.String("duplicate_file", bPath)).Len() != 1 {
		t.Errorf("duplicate not logged: %v", s.logs.All())
	}
}

func TestDirectoryTenantAllowingNothing(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "a.yaml", manifest("team-a", "app", "up"))
	writeFile(t, dir, "z.yaml", manifest("team-z", "app", `'{namespace="a"}'`)+"  metricIsolation: true\n")
	s := newTestSource(t, dir)
	s.wantPolicies(t, `team-a: {__name__="up"}`)
	wantErrContains(t, s.Errors()[filepath.Join(dir, "z.yaml")], "namespace team-z")
}

// TestDirectorySymlinks mimics a Kubernetes ConfigMap volume: the files are
// symlinks into ..data, itself a symlink swapped atomically on update.
func TestDirectorySymlinks(t *testing.T) {
	dir := t.TempDir()
	version := func(name, content string) {
		if err := os.Mkdir(filepath.Join(dir, name), 0o755); err != nil {
			t.Fatal(err)
		}
		writeFile(t, filepath.Join(dir, name), "team-a.yaml", content)
		tmp := filepath.Join(dir, "..data_tmp")
		if err := os.Symlink(name, tmp); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, filepath.Join(dir, "..data")); err != nil {
			t.Fatal(err)
		}
	}
	version("..2024_01", manifest("team-a", "app", "up"))
	if err := os.Symlink(filepath.Join("..data", "team-a.yaml"), filepath.Join(dir, "team-a.yaml")); err != nil {
		t.Fatal(err)
	}
	s := newTestSource(t, dir)
	s.wantPolicies(t, `team-a: {__name__="up"}`)

	version("..2024_02", manifest("team-a", "app", "down"))
	s.mustScan(t, true)
	s.wantPolicies(t, `team-a: {__name__="down"}`)
}

// A rewrite that keeps the size, within the file system's timestamp
// granularity, is still seen.
func TestDirectorySameSizeRewrite(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "a.yaml", manifest("team-a", "app", "aaa"))
	s := newTestSource(t, dir)
	path := filepath.Join(dir, "a.yaml")
	before, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, dir, "a.yaml", manifest("team-a", "app", "bbb"))
	// Same size and same mtime: only the content differs.
	if err := os.Chtimes(path, before.ModTime(), before.ModTime()); err != nil {
		t.Fatal(err)
	}
	s.mustScan(t, true)
	s.wantPolicies(t, `team-a: {__name__="bbb"}`)
	s.mustScan(t, false) // re-hashed, but unchanged
}

func TestDirectoryProvisionErrors(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "file.yaml", "")
	for _, path := range []string{"", filepath.Join(dir, "missing"), filepath.Join(dir, "file.yaml")} {
		d := &DirectorySource{Path: path}
		if err := d.provision(zap.NewNop(), newTenantSet(new(Registry), zap.NewNop(), DefaultMaxPatternsPerNamespace), nil); err == nil {
			t.Errorf("provision(%q): want error", path)
		}
	}
}

func TestDirectoryFileReplacedByDirectory(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "a.yaml", manifest("team-a", "app", "up"))
	s := newTestSource(t, dir)
	path := filepath.Join(dir, "a.yaml")
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(path, 0o755); err != nil {
		t.Fatal(err)
	}
	s.mustScan(t, true)
	s.wantPolicies(t)
}
