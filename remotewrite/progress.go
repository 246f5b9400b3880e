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

// progress is how far a copier has got. Samples are sent in (timestamp,
// series) order, series ordered as Prometheus orders label sets, so one
// position says exactly what the target has acknowledged: every sample at a
// time before T, and at T every series up to and including Series (all of
// them when Series is empty).
type progress struct {
	T      int64         `json:"t"`
	Series labels.Labels `json:"series,omitzero"`
}

// covers reports whether the sample of lset at t was acknowledged.
func (p progress) covers(t int64, lset labels.Labels) bool {
	return t < p.T || t == p.T && (p.Series.IsEmpty() || labels.Compare(lset, p.Series) <= 0)
}

// readFrom is the first timestamp a read must include to get every sample
// not yet covered.
func (p progress) readFrom() int64 {
	if p.Series.IsEmpty() {
		return p.T + 1
	}
	return p.T
}

// savedState is what a copier keeps on disk so that a restart resumes where
// the target's acknowledgements ended.
type savedState struct {
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
	return s, true, nil
}

func (f stateFile) save(s savedState) error {
	if f.path == "" {
		return nil
	}
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
