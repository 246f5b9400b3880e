package remotewrite

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/prometheus/prometheus/model/labels"
)

// progress is how far a copier has got. A window's samples are sent series
// by series, in Prometheus's label-set order, and each series' in time
// order; so one position says exactly what the target has acknowledged:
// every sample at or before T and, while a window (T, Window] is partly
// sent, in it every sample of the series before Series, and of Series those
// at or before SeriesT.
type progress struct {
	T       int64         `json:"t"`
	Window  int64         `json:"window,omitempty"`
	Series  labels.Labels `json:"series,omitzero"`
	SeriesT int64         `json:"series_t,omitempty"`
}

// covers reports whether the sample of lset at t was acknowledged.
func (p progress) covers(t int64, lset labels.Labels) bool {
	if t <= p.T {
		return true
	}
	if p.Series.IsEmpty() || t > p.Window {
		return false
	}
	c := labels.Compare(lset, p.Series)
	return c < 0 || c == 0 && t <= p.SeriesT
}

// partial reports whether a window is partly sent: the next read must be
// that window again, for the rest of it.
func (p progress) partial() bool { return !p.Series.IsEmpty() && p.Window > p.T }

// readFrom is the first timestamp a read must include to get every sample
// not yet covered.
func (p progress) readFrom() int64 { return p.T + 1 }

// savedState is what a copier keeps on disk so that a restart resumes where
// the target's acknowledgements ended.
type savedState struct {
	// Version is the meaning of Progress: 2, windows sent series by
	// series. Another version is not resumed.
	Version int `json:"version,omitempty"`
	// Target identifies the target the progress belongs to; progress for
	// another target is not resumed.
	Target   string   `json:"target"`
	Progress progress `json:"progress"`
	// InFlight is where the batch being sent ends; set while its
	// acknowledgement is outstanding.
	InFlight *progress `json:"in_flight,omitempty"`
}

// stateFile persists one copier's state. Writes go to a temporary file that
// is renamed over the old one, so a crash leaves the old or the new state,
// never a torn one.
type stateFile struct {
	path string
}

// stateVersion is the Version of states saved now.
const stateVersion = 2

func (f stateFile) load() (savedState, bool, error) {
	var s savedState
	if f.path == "" {
		return s, false, nil
	}
	b, err := os.ReadFile(f.path)
	if errors.Is(err, fs.ErrNotExist) {
		return s, false, nil
	}
	if err != nil {
		return s, false, err
	}
	if err := json.Unmarshal(b, &s); err != nil {
		return s, false, fmt.Errorf("state file %s: %w", f.path, err)
	}
	if s.Version != stateVersion {
		// Version 1, (timestamp, series) order, was never released.
		return s, false, fmt.Errorf("state file %s: version %d, not %d", f.path, s.Version, stateVersion)
	}
	return s, true, nil
}

func (f stateFile) save(s savedState) error {
	if f.path == "" {
		return nil
	}
	s.Version = stateVersion
	b, err := json.Marshal(s)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(f.path), 0o700); err != nil {
		return err
	}
	tmp := f.path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, f.path)
}
