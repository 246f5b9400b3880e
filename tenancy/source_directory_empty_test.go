package tenancy

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
)

// clock is a settable time for DirectorySource.now.
type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

// newHeldSource is a test source over dir with a clock of its own, and the
// grace it was given.
func newHeldSource(t *testing.T, dir string) (*testSource, *clock) {
	t.Helper()
	s := newTestSource(t, dir)
	c := &clock{t: time.Now()}
	s.now = c.now
	return s, c
}

const teamAPolicy = `team-a: {__name__=~"http_requests_total|up"}`

// TestDirectoryEmptiedFileIsHeld: a file truncated before it is written
// again (a tool that rewrites in place) keeps its objects meanwhile, and
// says so; what is written then takes effect at once, here a narrower
// policy.
func TestDirectoryEmptiedFileIsHeld(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "team-a.yaml", manifest("team-a", "app", "up")+"---\n"+manifest("team-a", "http", "http_requests_total"))
	s, clk := newHeldSource(t, dir)
	s.wantPolicies(t, teamAPolicy)
	path := filepath.Join(dir, "team-a.yaml")
	holds := emptyFileHolds.Load()

	for _, empty := range []string{"", "# being rewritten\n---\n"} {
		writeFile(t, dir, "team-a.yaml", empty)
		s.mustScan(t, false)
		s.wantPolicies(t, teamAPolicy)
		err := s.Errors()[path]
		if err == nil || !strings.Contains(err.Error(), "file is empty; its 2 MetricAccess objects stay in force until") ||
			!strings.Contains(err.Error(), "write manifest files atomically") {
			t.Fatalf("%q: file error %v, want the hold explained", empty, err)
		}
		if s.Held() != 1 {
			t.Errorf("%q: Held() = %d, want 1", empty, s.Held())
		}
		clk.t = clk.t.Add(time.Duration(DefaultEmptyFileGrace) - time.Millisecond)
		s.mustScan(t, false)
		s.wantPolicies(t, teamAPolicy)

		writeFile(t, dir, "team-a.yaml", manifest("team-a", "app", "up")+"---\n"+manifest("team-a", "http", "http_requests_total"))
		s.mustScan(t, true)
		s.wantPolicies(t, teamAPolicy)
		if err := s.Errors()[path]; err != nil || s.Held() != 0 {
			t.Errorf("%q: written again: error %v, held %d", empty, err, s.Held())
		}
	}
	if got := emptyFileHolds.Load() - holds; got != 2 {
		t.Errorf("empty_file_holds_total grew by %d, want 2", got)
	}
	if n := s.logs.FilterMessage("MetricAccess file is empty; keeping its objects for empty_file_grace").Len(); n != 2 {
		t.Errorf("%d warnings, want 2", n)
	}

	// Truncated, then written with less: the narrower policy at once.
	writeFile(t, dir, "team-a.yaml", "")
	s.mustScan(t, false)
	writeFile(t, dir, "team-a.yaml", manifest("team-a", "app", "up"))
	s.mustScan(t, true)
	s.wantPolicies(t, `team-a: {__name__="up"}`)
}

// TestDirectoryEmptyFileRemovedAfterGrace: a file that stays empty loses
// its objects once the grace has passed.
func TestDirectoryEmptyFileRemovedAfterGrace(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "team-a.yaml", manifest("team-a", "app", "up"))
	writeFile(t, dir, "team-b.yaml", manifest("team-b", "app", "up"))
	s, clk := newHeldSource(t, dir)
	writeFile(t, dir, "team-a.yaml", "")
	s.mustScan(t, false)
	s.wantPolicies(t, `team-a: {__name__="up"}`, `team-b: {__name__="up"}`)
	clk.t = clk.t.Add(time.Duration(DefaultEmptyFileGrace))
	s.mustScan(t, true)
	s.wantPolicies(t, `team-b: {__name__="up"}`)
	if err := s.Errors()[filepath.Join(dir, "team-a.yaml")]; err != nil || s.Held() != 0 {
		t.Errorf("after the grace: error %v, held %d", err, s.Held())
	}
	if s.logs.FilterMessage("MetricAccess file stayed empty past empty_file_grace; its objects are removed").Len() != 1 {
		t.Error("no warning when the objects were removed")
	}
	// Nothing more to remove, nor to hold.
	clk.t = clk.t.Add(time.Hour)
	s.mustScan(t, false)
}

// TestDirectoryGraceDoesNotRestart: a held file that changes but stays
// empty (a comment written) is held from the first time it was found
// empty, not longer.
func TestDirectoryGraceDoesNotRestart(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "team-a.yaml", manifest("team-a", "app", "up"))
	s, clk := newHeldSource(t, dir)
	writeFile(t, dir, "team-a.yaml", "")
	s.mustScan(t, false)
	clk.t = clk.t.Add(time.Duration(DefaultEmptyFileGrace) - time.Second)
	writeFile(t, dir, "team-a.yaml", "# emptied on purpose\n")
	s.mustScan(t, false)
	s.wantPolicies(t, `team-a: {__name__="up"}`)
	clk.t = clk.t.Add(time.Second)
	s.mustScan(t, true)
	s.wantPolicies(t)
	if n := s.logs.FilterMessage("MetricAccess file is empty; keeping its objects for empty_file_grace").Len(); n != 1 {
		t.Errorf("%d warnings, want 1", n)
	}
}

// TestDirectoryNarrowingIsNotHeld: only an empty file waits. An edit that
// removes objects or patterns, and a deleted file, take effect at once.
func TestDirectoryNarrowingIsNotHeld(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "team-a.yaml", manifest("team-a", "app", "up")+"---\n"+manifest("team-a", "http", "http_requests_total", "process_.*"))
	writeFile(t, dir, "team-b.yaml", manifest("team-b", "app", "up"))
	s, _ := newHeldSource(t, dir)

	writeFile(t, dir, "team-a.yaml", manifest("team-a", "app", "up")+"---\n"+manifest("team-a", "http", "http_requests_total"))
	s.mustScan(t, true)
	s.wantPolicies(t, teamAPolicy, `team-b: {__name__="up"}`)
	writeFile(t, dir, "team-a.yaml", manifest("team-a", "app", "up"))
	s.mustScan(t, true)
	s.wantPolicies(t, `team-a: {__name__="up"}`, `team-b: {__name__="up"}`)

	// Emptied, then deleted while held: gone at once.
	writeFile(t, dir, "team-a.yaml", "")
	s.mustScan(t, false)
	if err := os.Remove(filepath.Join(dir, "team-a.yaml")); err != nil {
		t.Fatal(err)
	}
	s.mustScan(t, true)
	s.wantPolicies(t, `team-b: {__name__="up"}`)
	if err := os.Remove(filepath.Join(dir, "team-b.yaml")); err != nil {
		t.Fatal(err)
	}
	s.mustScan(t, true)
	s.wantPolicies(t)
	if s.Held() != 0 {
		t.Errorf("held %d", s.Held())
	}
}

// TestDirectoryEmptyFileWithoutObjectsIsNotHeld: a file that never had
// objects has nothing to keep.
func TestDirectoryEmptyFileWithoutObjectsIsNotHeld(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "team-a.yaml", "")
	s, _ := newHeldSource(t, dir)
	writeFile(t, dir, "team-a.yaml", "# nothing yet\n")
	s.mustScan(t, true)
	if len(s.Errors()) != 0 || s.Held() != 0 {
		t.Errorf("errors %v, held %d", s.Errors(), s.Held())
	}
}

func TestDirectoryEmptyFileGraceDefault(t *testing.T) {
	s := newTestSource(t, t.TempDir())
	if s.EmptyFileGrace != caddy.Duration(DefaultEmptyFileGrace) {
		t.Errorf("empty_file_grace = %v, want %v", time.Duration(s.EmptyFileGrace), DefaultEmptyFileGrace)
	}
}

// TestDirectoryHoldOutlivesReload: a config reload while a file is held
// empty keeps it held (the new config's first read sees it empty, with no
// objects of its own to keep), and ends the hold when the grace would have.
func TestDirectoryHoldOutlivesReload(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "team-a.yaml", manifest("team-a", "app", "up"))
	old := serveDirectory(t, dir)
	writeFile(t, dir, "team-a.yaml", "")
	old.Directory.scan()
	if old.Directory.Held() != 1 {
		t.Fatalf("held %d before the reload, want 1", old.Directory.Held())
	}

	next := serveDirectory(t, dir)
	if next == old {
		t.Fatal("the reload did not replace the app")
	}
	if _, ok := next.Registry().Lookup("team-a"); !ok || next.Directory.Held() != 1 {
		t.Errorf("after the reload: team-a in force %v, held %d; want the objects kept, held", ok, next.Directory.Held())
	}
	next.Directory.now = func() time.Time { return time.Now().Add(time.Duration(DefaultEmptyFileGrace)) }
	if !next.Directory.scan() {
		t.Fatal("the grace ended and nothing changed")
	}
	next.tenants.wait(false)
	if _, ok := next.Registry().Lookup("team-a"); ok {
		t.Error("team-a still in force after the grace")
	}
}
