package tenancy

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

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

	// Emptied, held, and still empty after the grace.
	clk := &clock{t: time.Now()}
	s.now = clk.now
	writeFile(t, dir, "a.yaml", "")
	s.mustScan(t, false)
	held := s.Errors()[filepath.Join(dir, "a.yaml")]
	if held == nil {
		t.Fatal("a file held empty has no error")
	}
	msg := held.Error()
	for _, p := range [][2]string{{`^.*/a\.yaml:`, `<file>:`}, {`its 1 MetricAccess`, `its <n> MetricAccess`},
		{`until [^ ]+ \(empty_file_grace [^)]+\)`, `until <time> (empty_file_grace <duration>)`}} {
		msg = doccheck.Generalize(msg, p[0], p[1])
	}
	doccheck.Shows(t, doc, msg)
	clk.t = clk.t.Add(time.Duration(DefaultEmptyFileGrace))
	s.mustScan(t, true)
	for _, m := range []string{"MetricAccess file is empty; keeping its objects for empty_file_grace", "MetricAccess file stayed empty past empty_file_grace; its objects are removed"} {
		if s.logs.FilterMessage(m).Len() != 1 {
			t.Errorf("not logged: %q", m)
		}
		doccheck.Shows(t, doc, "`"+m+"`")
	}
}

// TestTroubleshootingConditions: the doc names the reasons of the
// conditions the Kubernetes source writes on MetricAccess objects.
func TestTroubleshootingConditions(t *testing.T) {
	doc := doccheck.Troubleshooting(t)
	for _, reason := range []string{ReasonInvalid, ReasonEmpty, ReasonDuplicate, ReasonTooManyPatterns, ConditionWarning, ReasonRegexLikeLiteral} {
		doccheck.Shows(t, doc, "`"+reason+"`")
	}
}
