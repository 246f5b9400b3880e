package remotewrite

import (
	"time"
)

// Status is a copier's state as the admin API shows it: metadata and
// counters, never series data.
type Status struct {
	Namespace string `json:"namespace"`
	Object    string `json:"object"`
	// Source is where the object was read from (a file, or kubernetes).
	Source string `json:"source,omitempty"`
	// Target is the kind of target and its URL, without credentials.
	Target   string `json:"target"`
	Protocol string `json:"protocol,omitempty"`
	Interval string `json:"interval"`
	// State is what the copier is doing: starting (no pass done yet),
	// copying (the last pass or write worked), retrying (the target or
	// the source fails, LastError says how; retried with backoff),
	// state_unwritable (its progress cannot be saved under state_dir;
	// nothing is sent until it can), refused (the target is invalid;
	// never retried).
	State string `json:"state"`
	// StateSince is when State last changed.
	StateSince time.Time `json:"state_since,omitzero"`
	// CopiedUntil: every sample up to this time has been acknowledged.
	CopiedUntil   time.Time `json:"copied_until,omitzero"`
	LastSuccess   time.Time `json:"last_success,omitzero"`
	LastError     string    `json:"last_error,omitempty"`
	LastErrorTime time.Time `json:"last_error_time,omitzero"`
	// Samples counts are of the object and target since the process
	// started; a reload keeps them.
	SamplesSent    uint64 `json:"samples_sent"`
	SamplesFailed  uint64 `json:"samples_failed"`
	SamplesDropped uint64 `json:"samples_dropped"`
	// SamplesResentRefused are samples of batches resent after their
	// answer was lost that the target refused: most likely held already,
	// not a loss, and not in SamplesDropped.
	SamplesResentRefused uint64 `json:"samples_resent_refused"`
	PendingSamples       int    `json:"pending_samples"`
	// LiveSeries are the series the copier tracks for staleness.
	LiveSeries int `json:"live_series"`
	// With leader election: the Lease that decides which replica copies
	// the object, whether this replica holds it (leader: false means this
	// replica does not copy the object, lease_holder does), and the
	// holder as last seen.
	Lease       string `json:"lease,omitempty"`
	Leader      *bool  `json:"leader,omitempty"`
	LeaseHolder string `json:"lease_holder,omitempty"`
}
