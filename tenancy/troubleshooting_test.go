package tenancy

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/prom-tenant/caddy-prom-tenant/internal/doccheck"
)

// TestTroubleshootingDirectory drives the directory source's errors and
// checks that docs/TROUBLESHOOTING.md shows what it logs and reports.
func TestTroubleshootingDirectory(t *testing.T) {
	doc := doccheck.Troubleshooting(t)
	dir := t.TempDir()
	writeFile(t, dir, "a.yaml", manifest("team-a", "app", "up"))
	writeFile(t, dir, "b.yaml", manifest("team-b", "app", "'http_('"))
	writeFile(t, dir, "c.yaml", manifest("team-c", "app", "up")+strings.Repeat("#", maxManifestBytes))
	s := newTestSource(t, dir)
	writeFile(t, dir, "a.yaml", manifest("team-a", "app", "'http_('"))
	s.mustScan(t, false)

	var logged []string
	for _, e := range s.logs.All() {
		logged = append(logged, e.Message)
	}
	for file, want := range map[string]string{"a.yaml": "keeping its last good version", "b.yaml": "it contributes nothing"} {
		entries := s.logs.FilterMessageSnippet("invalid MetricAccess file").FilterFieldKey("file").All()
		var msg string
		for _, e := range entries {
			if e.ContextMap()["file"] == filepath.Join(dir, file) {
				msg = e.Message
			}
		}
		if !strings.HasSuffix(msg, want) {
			t.Fatalf("%s: logged %q, want a line ending %q (all: %q)", file, msg, want, logged)
		}
		doccheck.Shows(t, doc, "`"+msg+"`")
	}

	big := s.Errors()[filepath.Join(dir, "c.yaml")]
	if big == nil {
		t.Fatal("a file over the size cap has no error")
	}
	doccheck.Shows(t, doc, "`"+doccheck.Generalize(big.Error(), `^.*: file is [0-9]+ bytes`, `file is <n> bytes`)+"`")
}

// TestTroubleshootingConditions: the doc names the reasons of the
// conditions the Kubernetes source writes on MetricAccess objects.
func TestTroubleshootingConditions(t *testing.T) {
	doc := doccheck.Troubleshooting(t)
	for _, reason := range []string{ReasonInvalid, ReasonEmpty, ReasonDuplicate, ReasonTooManyPatterns, ConditionWarning, ReasonRegexLikeLiteral} {
		doccheck.Shows(t, doc, "`"+reason+"`")
	}
}
