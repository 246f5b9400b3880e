package promtenant

import (
	"go/build"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

const modulePath = "github.com/prom-tenant/caddy-prom-tenant"

// layers says which of the module's packages each package may import
// (docs/DESIGN.md, "Packages"): a package depends downward only. A path
// ending in "/" allows every package under it.
var layers = map[string][]string{
	".":                    {"discovery", "kubeauth", "remotewrite", "rewrite", "tenancy", "tenancy/v1alpha1", "internal/"},
	"remotewrite":          {"tenancy", "tenancy/v1alpha1", "rewrite", "internal/"},
	"tenancy":              {"tenancy/v1alpha1", "rewrite", "internal/"},
	"tenancy/v1alpha1":     {"rewrite"}, // only its test, to read compiled patterns as a policy
	"discovery":            {"internal/"},
	"kubeauth":             {"internal/"},
	"rewrite":              {},
	"internal/testenv":     {"internal/exampledata"},
	"cmd/caddy":            {"."},
	"cmd/exampledata":      {"internal/exampledata"},
	"e2e":                  {"discovery", "kubeauth", "remotewrite", "rewrite", "tenancy", "tenancy/v1alpha1", "internal/"}, // tests of the whole binary
	"internal/adminjson":   {},
	"internal/doccheck":    {},
	"internal/exampledata": {},
	"internal/kubeclient":  {},
	"internal/kubewatch":   {},
	"internal/metricreg":   {},
	"internal/promapi":     {},
	"cmd/benchdata":        {},
	"cmd/httpbenchdata":    {},
	"cmd/soakload":         {},
}

// modulePackages lists the module's package directories, relative to the
// root ("." for the root); bench/ is modules of its own.
func modulePackages(t *testing.T) map[string]*build.Package {
	t.Helper()
	pkgs := map[string]*build.Package{}
	err := filepath.WalkDir(".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return err
		}
		if p != "." {
			if _, err := os.Stat(filepath.Join(p, "go.mod")); err == nil || d.Name() == "testdata" || strings.HasPrefix(d.Name(), ".") {
				return filepath.SkipDir
			}
		}
		pkg, err := build.ImportDir(p, 0)
		if _, none := err.(*build.NoGoError); none {
			return nil
		}
		if err != nil {
			return err
		}
		pkgs[filepath.ToSlash(p)] = pkg
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return pkgs
}

// TestPackageLayers: every package imports only the packages below it, test
// files included, and every package has its place in the layers.
func TestPackageLayers(t *testing.T) {
	for dir, pkg := range modulePackages(t) {
		allowed, ok := layers[dir]
		if !ok {
			t.Errorf("package %s has no layer: add it to layers and to docs/DESIGN.md", dir)
			continue
		}
		imports := slices.Concat(pkg.Imports, pkg.TestImports, pkg.XTestImports)
		slices.Sort(imports)
		for _, imp := range slices.Compact(imports) {
			rel, ours := strings.CutPrefix(imp, modulePath)
			if !ours || imp == modulePath+"/"+dir || dir == "." && imp == modulePath {
				continue
			}
			rel = strings.TrimPrefix(rel, "/")
			if rel == "" {
				rel = "."
			}
			if !slices.ContainsFunc(allowed, func(a string) bool {
				return a == rel || strings.HasSuffix(a, "/") && strings.HasPrefix(rel, a)
			}) {
				t.Errorf("%s imports %s, which is not below it (docs/DESIGN.md, Packages)", dir, rel)
			}
		}
	}
}

// TestLayoutDocumented: README's layout and docs/DESIGN.md's package map
// name every package.
func TestLayoutDocumented(t *testing.T) {
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, layout, ok := strings.Cut(string(readme), "\n## Layout\n")
	if !ok {
		t.Fatal("README.md has no Layout section")
	}
	design, err := os.ReadFile("docs/DESIGN.md")
	if err != nil {
		t.Fatal(err)
	}
	for dir := range modulePackages(t) {
		if dir == "." {
			continue
		}
		names := []string{"`" + dir + "`", "`" + dir + "/`"}
		for doc, text := range map[string]string{"README.md's Layout": layout, "docs/DESIGN.md": string(design)} {
			if !slices.ContainsFunc(names, func(n string) bool { return strings.Contains(text, n) }) {
				t.Errorf("%s does not name %s", doc, dir)
			}
		}
	}
}
