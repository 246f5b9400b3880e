package remotewrite

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

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
