package remotewrite

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/prometheus/model/labels"
)

func TestProgressCovers(t *testing.T) {
	a := labels.FromStrings("__name__", "m", "pod", "a")
	b := labels.FromStrings("__name__", "m", "pod", "b")
	c := labels.FromStrings("__name__", "m", "pod", "c")
	for _, tc := range []struct {
		name string
		p    progress
		t    int64
		lset labels.Labels
		want bool
	}{
		{"before T, any series", progress{T: 100, Series: b}, 99, c, true},
		{"after T", progress{T: 100, Series: b}, 101, a, false},
		{"at T, series before", progress{T: 100, Series: b}, 100, a, true},
		{"at T, the series itself", progress{T: 100, Series: b}, 100, b, true},
		{"at T, series after", progress{T: 100, Series: b}, 100, c, false},
		{"at T, no Series: all of T", progress{T: 100}, 100, c, true},
		{"after T, no Series", progress{T: 100}, 101, a, false},
		{"before T, no Series", progress{T: 100}, -5, a, true},
		{"zero progress covers 0", progress{}, 0, a, true},
		{"zero progress not 1", progress{}, 1, a, false},
		// A label set that is a prefix of Series sorts before it.
		{"at T, prefix of Series", progress{T: 100, Series: labels.FromStrings("__name__", "m", "pod", "a", "x", "1")}, 100, a, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.p.covers(tc.t, tc.lset); got != tc.want {
				t.Errorf("progress %+v covers(%d, %s) = %v, want %v", tc.p, tc.t, tc.lset, got, tc.want)
			}
		})
	}
}

func TestProgressReadFrom(t *testing.T) {
	for _, tc := range []struct {
		p    progress
		want int64
	}{
		{progress{T: 100}, 101}, // all of 100 is done
		{progress{T: 100, Series: labels.FromStrings("pod", "a")}, 100}, // later series at 100 remain
		{progress{T: -1}, 0},
	} {
		if got := tc.p.readFrom(); got != tc.want {
			t.Errorf("%+v.readFrom() = %d, want %d", tc.p, got, tc.want)
		}
		// Whatever readFrom returns, the sample at readFrom-1 is covered
		// for every series, so a read from there loses nothing.
		anything := labels.FromStrings("~", "~")
		if !tc.p.covers(tc.p.readFrom()-1, anything) {
			t.Errorf("%+v: a sample just before readFrom is not covered", tc.p)
		}
	}
}

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
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := stateFile{path: filepath.Join(t.TempDir(), "ns", "sub", "obj.json")}
			if err := f.save(tc.s); err != nil {
				t.Fatal(err)
			}
			got, ok, err := f.load()
			if err != nil || !ok {
				t.Fatalf("load = %v, %v", ok, err)
			}
			if got.Target != tc.s.Target || got.Progress.T != tc.s.Progress.T || !labels.Equal(got.Progress.Series, tc.s.Progress.Series) {
				t.Errorf("loaded %+v, want %+v", got, tc.s)
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
		Target   string         `json:"target"`
		Progress map[string]any `json:"progress"`
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		t.Fatalf("state is not JSON: %v: %s", err, b)
	}
	if _, ok := raw.Progress["series"]; ok {
		t.Errorf("empty series is written: %s", b)
	}
	if raw.Target != "x" || raw.Progress["t"] != float64(7) {
		t.Errorf("state written as %s", b)
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
	got, ok, err := f.load()
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
		s, ok, err := stateFile{path: path}.load()
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
	if _, ok, err := f.load(); ok || err != nil {
		t.Errorf("load without a path = %v, %v", ok, err)
	}
}

func TestStateFileCorrupt(t *testing.T) {
	for _, content := range []string{"{not json", `{"target": 5}`, `{"progress": {"series": ["a"]}}`} {
		path := filepath.Join(t.TempDir(), "corrupt.json")
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		_, ok, err := stateFile{path: path}.load()
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
	if _, ok, err := (stateFile{path: path}).load(); err == nil || ok {
		t.Errorf("load of a directory = %v, %v; want an error", ok, err)
	}
}
