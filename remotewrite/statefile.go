package remotewrite

import (
	"context"
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
	// Version is the meaning of the fields: 3, windows sent series by
	// series, with the batches recorded before they are sent. Version 2
	// (one batch in flight) is read too; another is not resumed.
	Version int `json:"version,omitempty"`
	// Target identifies the target the progress belongs to; progress for
	// another target is not resumed.
	Target   string   `json:"target"`
	Progress progress `json:"progress"`
	// Batches are the ends of the batches recorded before they were sent,
	// in order, in Progress's window: none of their samples went out
	// before this was on disk, and after a restart each is sent again
	// alone, at exactly these boundaries.
	Batches []progress `json:"batches,omitempty"`
	// InFlight is version 2's single recorded batch, read as Batches.
	InFlight *progress `json:"in_flight,omitempty"`
}

// stateFile persists one copier's state durably: the state is written to a
// temporary file, which is synced and renamed over the old one, and then
// the directory is synced. A crash leaves the old or the new state, never a
// torn one, and a save that returned nil survives a crash of the machine:
// the copier relies on that before it sends a batch.
type stateFile struct {
	path string
}

// stateVersion is the Version of states saved now.
const stateVersion = 3

func (f stateFile) load(context.Context) (savedState, bool, error) {
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
	if err := s.upgrade(); err != nil {
		return s, false, fmt.Errorf("state file %s: %w", f.path, err)
	}
	return s, true, nil
}

// upgrade converts a state saved by an older version to this one (its
// in-flight batch becomes the recorded batches), wherever it was kept.
func (s *savedState) upgrade() error {
	switch s.Version {
	case stateVersion:
	case 2:
		if s.InFlight != nil && len(s.Batches) == 0 {
			s.Batches = []progress{*s.InFlight}
		}
	default:
		// Version 1, (timestamp, series) order, was never released.
		return fmt.Errorf("version %d, not %d", s.Version, stateVersion)
	}
	s.Version, s.InFlight = stateVersion, nil
	return nil
}

func (f stateFile) save(s savedState) error {
	if f.path == "" {
		return nil
	}
	s.Version, s.InFlight = stateVersion, nil
	b, err := json.Marshal(s)
	if err != nil {
		return err
	}
	dir := filepath.Dir(f.path)
	if err := mkdirSynced(dir); err != nil {
		return err
	}
	tmp := f.path + ".tmp"
	if err := writeSynced(tmp, b); err != nil {
		return err
	}
	if err := os.Rename(tmp, f.path); err != nil {
		return err
	}
	// The rename is durable only once the directory is.
	return syncDir(dir)
}

// writeSynced writes b to path and syncs it: the rename that follows must
// not reach the disk before the data does.
func writeSynced(path string, b []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// mkdirSynced creates dir and its missing parents, syncing the parent of
// each one created, so that a file saved in it is not lost with its
// directory's entry.
func mkdirSynced(dir string) error {
	if fi, err := os.Stat(dir); err == nil && fi.IsDir() {
		return nil
	}
	var created []string
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(d); err == nil || filepath.Dir(d) == d {
			break
		}
		created = append(created, d)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	for _, d := range created {
		if err := syncDir(filepath.Dir(d)); err != nil {
			return err
		}
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}
