package remotewrite

import (
	"context"
	"errors"
)

// progressStore keeps one copy's savedState between runs: a file on the
// replica's disk (stateFile), or, with leader election, a ConfigMap that
// every replica can read (kubeStore), since the next leader may run on
// another pod. A copier sends a batch only after the store took the
// position it goes to, so load must give back exactly what the last save
// stored.
type progressStore interface {
	// load returns the saved state; ok is false when there is none. An
	// error wrapping errStoreUnavailable means "try again": the copy must
	// not start from initial_lookback instead. Once ctx is done, load
	// must not claim the progress: ctx is the loading copier's, which
	// ends with its Lease term.
	load(ctx context.Context) (s savedState, ok bool, err error)
	// save stores s. An error means s may not be stored: the copier must
	// not send what it would cover.
	save(s savedState) error
}

// errStoreUnavailable marks a load that failed for now (the API server
// could not be reached, or another replica wrote at the same moment), as
// opposed to a state that is unreadable for good.
var errStoreUnavailable = errors.New("copy progress unavailable")

// Interface guards.
var (
	_ progressStore = stateFile{}
	_ progressStore = (*kubeStore)(nil)
)
