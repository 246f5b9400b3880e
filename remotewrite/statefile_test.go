package remotewrite

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
)

func TestStateFileRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name string
		s    savedState
	}{
		{
			name: "with series",
			s: savedState{
				Target: "remote_write https://rw.example.com/api/v1/write",
				Progress: progress{
					T: 1700000000123,
					Series: labels.FromStrings(
						"__name__", "http_requests_total",
						"path", `/a "quoted"\ value`,
						"unicode", "Grüße, 世界",
						"eq", "a=b,c",
					),
				},
			},
		},
		{
			name: "without series",
			s:    savedState{Target: "prometheus http://p:9090/api/v1/write", Progress: progress{T: -42}},
		},
		{
			name: "partly sent window, batches recorded",
			s: savedState{
				Target:   "remote_write https://rw.example.com/api/v1/write",
				Progress: progress{T: 1000, Window: 2000, Series: labels.FromStrings("__name__", "up", "pod", "a"), SeriesT: 1500},
				Batches: []progress{
					{T: 1000, Window: 2000, Series: labels.FromStrings("__name__", "up", "pod", "b"), SeriesT: 1001},
					{T: 1000, Window: 2000, Series: labels.FromStrings("__name__", "up", "pod", "c"), SeriesT: 1700},
				},
			},
		},
		{
			// Zero is a timestamp like any other.
			name: "partly sent window at time zero",
			s: savedState{
				Target:   "x",
				Progress: progress{T: -10, Window: 10, Series: labels.FromStrings("a", "1"), SeriesT: 0},
				Batches:  []progress{{T: -10, Window: 10, Series: labels.FromStrings("a", "2"), SeriesT: 0}},
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := stateFile{path: filepath.Join(t.TempDir(), "ns", "sub", "obj.json")}
			if err := f.save(tc.s); err != nil {
				t.Fatal(err)
			}
			got, ok, err := f.load(t.Context())
			if err != nil || !ok {
				t.Fatalf("load = %v, %v", ok, err)
			}
			if got.Target != tc.s.Target || !testProgressEqual(got.Progress, tc.s.Progress) {
				t.Errorf("loaded %+v, want %+v", got, tc.s)
			}
			if !slices.EqualFunc(got.Batches, tc.s.Batches, testProgressEqual) {
				t.Errorf("loaded batches %+v, want %+v", got.Batches, tc.s.Batches)
			}
			if got.Version != stateVersion {
				t.Errorf("loaded version %d, want %d", got.Version, stateVersion)
			}
			// The loaded position means the same as the saved one.
			probe := labels.FromStrings("__name__", "http_requests_total", "path", "/b")
			if got.Progress.covers(tc.s.Progress.T, probe) != tc.s.Progress.covers(tc.s.Progress.T, probe) {
				t.Errorf("loaded progress covers differently")
			}

			info, err := os.Stat(f.path)
			if err != nil {
				t.Fatal(err)
			}
			if perm := info.Mode().Perm(); perm != 0o600 {
				t.Errorf("state file mode %v, want 0600", perm)
			}
			if _, err := os.Stat(f.path + ".tmp"); !os.IsNotExist(err) {
				t.Errorf("temporary file left behind: %v", err)
			}
		})
	}
}

func TestStateFileJSON(t *testing.T) {
	f := stateFile{path: filepath.Join(t.TempDir(), "s.json")}
	if err := f.save(savedState{Target: "x", Progress: progress{T: 7}}); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(f.path)
	if err != nil {
		t.Fatal(err)
	}
	var raw struct {
		Version  any            `json:"version"`
		Target   string         `json:"target"`
		Progress map[string]any `json:"progress"`
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		t.Fatalf("state is not JSON: %v: %s", err, b)
	}
	for _, key := range []string{"series", "window", "series_t"} {
		if _, ok := raw.Progress[key]; ok {
			t.Errorf("empty %s is written: %s", key, b)
		}
	}
	if raw.Target != "x" || raw.Progress["t"] != float64(7) {
		t.Errorf("state written as %s", b)
	}
	// Every state is written with its version, whatever the caller set.
	if raw.Version != float64(stateVersion) {
		t.Errorf("version written as %v, want %d: %s", raw.Version, stateVersion, b)
	}

	// A partly sent window's position.
	if err := f.save(savedState{Target: "x", Progress: progress{T: 7, Window: 20, Series: labels.FromStrings("a", "1"), SeriesT: 12}}); err != nil {
		t.Fatal(err)
	}
	b, _ = os.ReadFile(f.path)
	raw.Progress = nil
	if err := json.Unmarshal(b, &raw); err != nil {
		t.Fatal(err)
	}
	if raw.Progress["t"] != float64(7) || raw.Progress["window"] != float64(20) || raw.Progress["series_t"] != float64(12) {
		t.Errorf("partly sent window stored as %s", b)
	}

	// Series are stored as a JSON object of labels.
	if err := f.save(savedState{Target: "x", Progress: progress{T: 7, Series: labels.FromStrings("a", "1", "b", "2")}}); err != nil {
		t.Fatal(err)
	}
	b, _ = os.ReadFile(f.path)
	var series struct {
		Progress struct {
			Series map[string]string `json:"series"`
		} `json:"progress"`
	}
	if err := json.Unmarshal(b, &series); err != nil {
		t.Fatal(err)
	}
	if len(series.Progress.Series) != 2 || series.Progress.Series["a"] != "1" || series.Progress.Series["b"] != "2" {
		t.Errorf("series stored as %s", b)
	}
}

func TestStateFileOverwrites(t *testing.T) {
	f := stateFile{path: filepath.Join(t.TempDir(), "s.json")}
	for i, s := range []savedState{
		{Target: "one", Progress: progress{T: 1, Series: labels.FromStrings("a", "a-long-value-that-makes-the-file-longer")}},
		{Target: "two", Progress: progress{T: 2}},
	} {
		if err := f.save(s); err != nil {
			t.Fatalf("save %d: %v", i, err)
		}
	}
	got, ok, err := f.load(t.Context())
	if err != nil || !ok {
		t.Fatalf("load = %v, %v", ok, err)
	}
	if got.Target != "two" || got.Progress.T != 2 || !got.Progress.Series.IsEmpty() {
		t.Errorf("loaded %+v, want the second state", got)
	}
}

func TestStateFileMissing(t *testing.T) {
	for _, path := range []string{
		filepath.Join(t.TempDir(), "none.json"),
		filepath.Join(t.TempDir(), "no", "such", "dir", "none.json"),
	} {
		s, ok, err := stateFile{path: path}.load(t.Context())
		if err != nil || ok {
			t.Errorf("load(%s) = %+v, %v, %v; want nothing, no error", path, s, ok, err)
		}
	}
}

func TestStateFileOff(t *testing.T) {
	var f stateFile // no path: state is not kept
	if err := f.save(savedState{Target: "x", Progress: progress{T: 1}}); err != nil {
		t.Errorf("save without a path: %v", err)
	}
	if _, ok, err := f.load(t.Context()); ok || err != nil {
		t.Errorf("load without a path = %v, %v", ok, err)
	}
}

func TestStateFileCorrupt(t *testing.T) {
	for _, content := range []string{"{not json", `{"target": 5}`, `{"progress": {"series": ["a"]}}`} {
		path := filepath.Join(t.TempDir(), "corrupt.json")
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		_, ok, err := stateFile{path: path}.load(t.Context())
		if err == nil {
			t.Errorf("%q: no error", content)
			continue
		}
		if ok {
			t.Errorf("%q: ok with an error", content)
		}
		if !strings.Contains(err.Error(), path) {
			t.Errorf("%q: error %q does not name the file", content, err)
		}
	}
}

func TestStateFileUnreadable(t *testing.T) {
	// A directory where the file should be: an error, not "no state".
	path := t.TempDir()
	if _, ok, err := (stateFile{path: path}).load(t.Context()); err == nil || ok {
		t.Errorf("load of a directory = %v, %v; want an error", ok, err)
	}
}

// A state of another version (version 1, never released, had no version
// field) is not resumed: its positions meant another order.
func TestStateFileOtherVersion(t *testing.T) {
	for _, body := range []string{
		`{"target":"x","progress":{"t":100,"series":{"__name__":"m"}}}`,
		`{"version":4,"target":"x","progress":{"t":100}}`,
	} {
		f := stateFile{path: filepath.Join(t.TempDir(), "s.json")}
		if err := os.WriteFile(f.path, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, ok, err := f.load(t.Context()); ok || err == nil || !strings.Contains(err.Error(), "version") {
			t.Errorf("load(%s) = %v, %v; want an error naming the version", body, ok, err)
		}
	}
}

// A version 2 state (before batches were recorded ahead) resumes: its batch
// in flight is the one recorded batch.
func TestStateFileVersion2(t *testing.T) {
	f := stateFile{path: filepath.Join(t.TempDir(), "s.json")}
	body := `{"version":2,"target":"x","progress":{"t":100},"in_flight":{"t":100,"window":400,"series":{"__name__":"m"},"series_t":150}}`
	if err := os.WriteFile(f.path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	got, ok, err := f.load(t.Context())
	want := progress{T: 100, Window: 400, Series: labels.FromStrings("__name__", "m"), SeriesT: 150}
	if err != nil || !ok || len(got.Batches) != 1 || !testProgressEqual(got.Batches[0], want) || got.InFlight != nil {
		t.Errorf("load = %+v, %v, %v; want the batch in flight as the one recorded batch", got, ok, err)
	}
}

// A save that cannot write its file fails, whatever stands in the way, and
// leaves the saved state as it was; the next save after the way is clear
// works. (Tests run as root, whom permissions do not stop: a directory
// where the temporary file goes, or a file where the directory goes.)
func TestStateFileSaveFails(t *testing.T) {
	dir := t.TempDir()
	f := stateFile{path: filepath.Join(dir, "ns", "obj.json")}
	if err := f.save(savedState{Target: "x", Progress: progress{T: 1}}); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(f.path+".tmp", 0o700); err != nil {
		t.Fatal(err)
	}
	if err := f.save(savedState{Target: "x", Progress: progress{T: 2}}); err == nil {
		t.Fatal("save with a directory where the temporary file goes: no error")
	}
	if got, ok, err := f.load(t.Context()); err != nil || !ok || got.Progress.T != 1 {
		t.Errorf("after a failed save, load = %+v, %v, %v; want the state saved before", got, ok, err)
	}
	if err := os.Remove(f.path + ".tmp"); err != nil {
		t.Fatal(err)
	}
	if err := f.save(savedState{Target: "x", Progress: progress{T: 3}}); err != nil {
		t.Fatalf("save once the way is clear: %v", err)
	}

	blocked := stateFile{path: filepath.Join(dir, "file", "obj.json")}
	if err := os.WriteFile(filepath.Join(dir, "file"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := blocked.save(savedState{Target: "x"}); err == nil {
		t.Error("save with a file where the directory goes: no error")
	}
}

// BenchmarkStateFileSave is the cost of one durable save (write, fsync,
// rename, fsync of the directory) of a mid-window state recording
// batchesPerSave batches, in the system's temporary directory (set TMPDIR
// to measure another disk), beside the same save without the fsyncs (what
// saves were before they were durable). cpu-ns/op is the process's CPU
// time per save (user and system), which is what a copier's samples per
// second per core pays; ns/op is the wall time, during which the copier
// sends nothing. It decides batchesPerSave: one save per that many batches.
func BenchmarkStateFileSave(b *testing.B) {
	lset := labels.FromStrings("__name__", "http_requests_total", "namespace", "team-a", "pod", "api-7d9f8b6c4-x2x9q", "path", "/api/v1/items")
	s := savedState{Target: "remote_write https://rw.example.com/api/v1/write", Progress: progress{T: 1700000000000, Window: 1700000300000, Series: lset, SeriesT: 1700000150000}}
	for i := range batchesPerSave {
		s.Batches = append(s.Batches, progress{T: s.Progress.T, Window: s.Progress.Window, Series: lset, SeriesT: s.Progress.SeriesT + int64(i+1)*1000})
	}
	cpu := func() time.Duration {
		var ru syscall.Rusage
		if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
			b.Fatal(err)
		}
		return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	run := func(b *testing.B, save func(stateFile, savedState) error) {
		f := stateFile{path: filepath.Join(b.TempDir(), "team-a", "copy.json")}
		if err := f.save(s); err != nil {
			b.Fatal(err)
		}
		before := cpu()
		for b.Loop() {
			if err := save(f, s); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(cpu()-before)/float64(b.N), "cpu-ns/op")
	}
	b.Run("durable", func(b *testing.B) { run(b, stateFile.save) })
	b.Run("without_fsync", func(b *testing.B) {
		run(b, func(f stateFile, s savedState) error {
			body, err := json.Marshal(s)
			if err != nil {
				return err
			}
			if err := os.WriteFile(f.path+".tmp", body, 0o600); err != nil {
				return err
			}
			return os.Rename(f.path+".tmp", f.path)
		})
	})
}
