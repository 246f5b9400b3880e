package remotewrite

// The copier's states and transitions, all in this file. A copier changes
// its copyState only through the methods marked "Transition"; the ones
// marked "Plan" read it and change nothing. The exactly-once argument that
// these serve is in doc.go.

import (
	"github.com/prometheus/prometheus/model/labels"
)

// progress is a position in the copy order. A window's samples are sent
// series by series, in Prometheus's label-set order, and each series' in
// time order; so one position says exactly what lies before it: every
// sample at or before T and, while a window (T, Window] is partly sent, in
// it every sample of the series before Series, and of Series those at or
// before SeriesT.
type progress struct {
	T       int64         `json:"t"`
	Window  int64         `json:"window,omitempty"`
	Series  labels.Labels `json:"series,omitzero"`
	SeriesT int64         `json:"series_t,omitempty"`
}

// covers reports whether the sample of lset at t lies at or before p.
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

// partial reports whether p lies inside a window: the next read must be
// that window again, for the rest of it.
func (p progress) partial() bool { return !p.Series.IsEmpty() && p.Window > p.T }

// readFrom is the first timestamp a read must include to get every sample
// after p.
func (p progress) readFrom() int64 { return p.T + 1 }

// before compares two positions in one window: negative when a lies before
// b in the copy order, zero when they are the same.
func (a progress) before(b progress) int {
	if c := labels.Compare(a.Series, b.Series); c != 0 {
		return c
	}
	switch {
	case a.SeriesT < b.SeriesT:
		return -1
	case a.SeriesT > b.SeriesT:
		return 1
	}
	return 0
}

// copyState is where one copy (a MetricAccess to one target) stands. It
// lives in the copy's cursor, so a copier that replaces another on reload
// takes it over, and is changed only by the pass holding the cursor.
//
// The states, by its fields:
//
//	unloaded     !loaded: no pass has run since the process started.
//	between      acked is whole, recorded empty: the next pass reads a new
//	             window, from acked.T+1, max_window or fit long.
//	mid-window   acked.partial(): the window (acked.T, acked.Window] was
//	             cut (max_pending_samples) or a pass stopped in it; the
//	             next pass reads exactly that window again, for the rest.
//	recorded     recorded non-empty (always mid-window, or at its start):
//	             the state file holds the boundaries of the next batches;
//	             they go out one by one at exactly those boundaries, the
//	             first unsure of them as resends (their answer was lost, or
//	             the process restarted).
//
// The transitions: load (unloaded → any), unload (any → unloaded, after a
// save a store may or may not have taken), recordBatches (→ recorded, once
// the state file holds them), acknowledged (→ mid-window), lost (the
// batch becomes unsure), stopped (drops the recorded batches not sent),
// gathered (→ mid-window, Pushgateway), windowDone (→ between); tooFull and
// fitted adapt fit, in any state.
type copyState struct {
	// loaded: acked and recorded were set from the state file, or acked
	// from the start a copy without saved progress has.
	loaded bool
	// acked is the end of what the target holds: every sample it covers
	// was acknowledged by the target or refused by it for good (counted as
	// dropped). It only moves forward in the copy order, and is what the
	// state file keeps as the progress.
	acked progress
	// recorded are the ends of the next batches, in order, as the state
	// file holds them: a batch is sent only once its end is on disk, so
	// that after a crash the next run knows exactly which samples went
	// out together. Invariant: each in acked's window ahead of acked
	// (T == acked.T, partial(), the same Window as acked's when
	// acked.partial()), in increasing order. Each batch is sent alone,
	// never with samples past its end: a receiver that holds it refuses it
	// whole, and new samples with it.
	recorded []progress
	// unsure is how many of recorded's first batches the target may hold
	// already (a request that failed after it might have been committed,
	// or the process stopped before its answer was saved): they are sent
	// as resends, whose refusal is expected and loses nothing.
	unsure int
	// fit is the window length, in milliseconds, that last held at most
	// max_pending_samples; 0 is max_window. It decides only how many reads
	// a window takes, never what is copied.
	fit int64
}

// load sets the starting point once: the saved state when it belongs to
// the same target (ok), else start. Recorded batches that break their
// invariant cannot be meant and are dropped; every one kept is unsure, as
// the run that recorded them may have sent it. Transition: unloaded → any.
func (s *copyState) load(saved savedState, ok bool, start int64) {
	s.loaded = true
	if !ok {
		s.acked = progress{T: start}
		return
	}
	s.acked, s.recorded = saved.Progress, saved.Batches
	for i, u := range s.recorded {
		if !u.partial() || u.T != s.acked.T || s.acked.partial() && u.Window != s.acked.Window ||
			i == 0 && s.acked.partial() && u.before(s.acked) <= 0 ||
			i > 0 && (u.Window != s.recorded[0].Window || s.recorded[i-1].before(u) >= 0) {
			s.recorded = nil
			break
		}
	}
	s.unsure = len(s.recorded)
}

// unload forgets where the copy stands, after a save to a store that may or
// may not have taken it (kubeStore): the next pass loads what the store
// holds. Transition (any → unloaded).
func (s *copyState) unload() { s.loaded = false }

// readPlan is the time range a pass reads.
type readPlan struct {
	from, to int64 // inclusive, in milliseconds
	// fixed: the range is the window acked or recorded lies in, whose
	// positions refer to the order of its samples: it is read as it was,
	// whatever fit says, and cut after max_pending_samples, never halved.
	fixed bool
}

// plan is the range the next pass reads, where end is the newest time that
// may be read (the present less read_delay) and maxWindow the longest range,
// in milliseconds; ok is false when there is nothing to read yet. Plan.
func (s *copyState) plan(end, maxWindow int64) (p readPlan, ok bool) {
	from := s.acked.readFrom()
	switch {
	case from > end:
		return readPlan{}, false
	case s.acked.partial():
		return readPlan{from: from, to: s.acked.Window, fixed: true}, true
	case len(s.recorded) > 0:
		return readPlan{from: from, to: s.recorded[0].Window, fixed: true}, true
	}
	to := min(end, from+maxWindow-1)
	if s.fit > 0 {
		to = min(to, from+s.fit-1)
	}
	return readPlan{from: from, to: to}, true
}

// truncates reports whether a read of p is cut after max_pending_samples
// rather than failing with errWindowFull: a fixed window, and a single
// millisecond, which cannot be halved.
func (p readPlan) truncates() bool { return p.fixed || p.from == p.to }

// tooFull notes that the range [from, to] held more than
// max_pending_samples: the next read is its first half, and that is the
// length that fits for now. Transition (fit).
func (s *copyState) tooFull(from, to int64) (newTo int64) {
	newTo = from + (to-from)/2
	s.fit = newTo - from + 1
	return newTo
}

// fitted notes that the range [from, to] held n samples: a range of the
// remembered length that held less than half of maxPending doubles it,
// back to maxWindow (milliseconds). Transition (fit).
func (s *copyState) fitted(from, to int64, n, maxPending int, maxWindow int64) {
	if s.fit > 0 && to-from+1 == s.fit && n < maxPending/2 {
		s.fit *= 2
		if s.fit >= maxWindow {
			s.fit = 0
		}
	}
}

// batchPlan is the next batch of a window: its samples [i, i+n).
type batchPlan struct {
	n int
	// recorded: the batch is the first recorded batch; a batch that is
	// not (new samples, or a part of a recorded batch larger than
	// batch_size) must be recorded before it is sent (toRecord).
	recorded bool
	// resend: the target may hold the batch already.
	resend bool
	// end is where acked moves once the target has the batch.
	end progress
}

// batchAt is the batch of w from sample i, of at most batchSize samples:
// the samples the first recorded batch covers, if the first is one of them
// (the covered ones come first: samples are in progress order), else the
// next batchSize. A recorded batch of more than batchSize samples (a
// smaller batch_size since it was recorded) is not recorded as such: its
// parts must be (toRecord). Plan.
func (s *copyState) batchAt(w *window, i, batchSize int) batchPlan {
	b := batchPlan{n: min(batchSize, len(w.samples)-i)}
	if k := s.coveredByFirst(w, i, batchSize+1); k > 0 {
		b.n, b.recorded, b.resend = min(k, batchSize), k <= batchSize, s.unsure > 0
	}
	b.end = w.position(s.acked.T, i+b.n-1)
	return b
}

// coveredByFirst is how many samples of w from i, at most limit, the first
// recorded batch covers.
func (s *copyState) coveredByFirst(w *window, i, limit int) int {
	if len(s.recorded) == 0 {
		return 0
	}
	u := s.recorded[0]
	k := 0
	for i+k < len(w.samples) && k < limit && u.covers(w.samples[i+k].t, w.series[w.samples[i+k].series]) {
		k++
	}
	return k
}

// planBatch is batchAt, after dropping the recorded batches whose samples
// are all acknowledged: the first one does not cover sample i, the first
// not acknowledged. Transition (recorded).
func (s *copyState) planBatch(w *window, i, batchSize int) batchPlan {
	for len(s.recorded) > 0 && !s.recorded[0].covers(w.samples[i].t, w.series[w.samples[i].series]) {
		s.dropFirst()
	}
	return s.batchAt(w, i, batchSize)
}

func (s *copyState) dropFirst() {
	s.recorded = s.recorded[1:]
	s.unsure = max(0, s.unsure-1)
	if len(s.recorded) == 0 {
		s.recorded = nil
	}
}

// toRecord is what the state file must hold as the recorded batches before
// the batch at sample i of w (b, not recorded) is sent: with no batch
// recorded, the ends of the next n batches of batchSize samples (the last
// one may be shorter); else the first recorded batch cut into parts of
// batchSize, its last part ending where it did, and the others as they
// were. A part of a recorded batch is never sent unrecorded: acknowledged
// parts are not saved one by one, so a restart would resend the whole
// batch, held in part, which a receiver refuses whole. Plan.
func (s *copyState) toRecord(w *window, i, batchSize, n int) []progress {
	var ends []progress
	if len(s.recorded) > 0 {
		k := s.coveredByFirst(w, i, len(w.samples))
		for j := i + batchSize; j < i+k; j += batchSize {
			ends = append(ends, w.position(s.acked.T, j-1))
		}
		return append(append(ends, s.recorded[0]), s.recorded[1:]...)
	}
	for j := i; j < len(w.samples) && len(ends) < n; j += batchSize {
		ends = append(ends, w.position(s.acked.T, min(j+batchSize, len(w.samples))-1))
	}
	return ends
}

// recordBatches notes that the state file holds ends (from toRecord) as
// the recorded batches: new ones were never sent, and the parts of an
// unsure batch are unsure. Transition (→ recorded).
func (s *copyState) recordBatches(ends []progress) {
	switch {
	case len(s.recorded) == 0:
		s.unsure = 0
	case s.unsure > 0:
		s.unsure += len(ends) - len(s.recorded)
	}
	s.recorded = ends
}

// saved is the state to save now.
func (s *copyState) saved(targetID string) savedState {
	return savedState{Target: targetID, Progress: s.acked, Batches: s.recorded}
}

// acknowledged moves acked to the end of b, which the target took (or
// refused for good), and drops the first recorded batch once b reaches its
// end. Transition (→ mid-window).
func (s *copyState) acknowledged(b batchPlan) {
	s.acked = b.end
	if b.recorded && len(s.recorded) > 0 && s.recorded[0].before(b.end) <= 0 {
		s.dropFirst()
	}
}

// lost notes that the answer to b never came: the target may hold it, so
// the recorded batch it belongs to is unsure. Transition.
func (s *copyState) lost(b batchPlan) {
	if b.recorded {
		s.unsure = max(s.unsure, 1)
	}
}

// stopped drops the recorded batches that were never sent (those after
// the unsure ones), before the state is saved on stopping: the next run
// cuts them by its own batch_size. Transition.
func (s *copyState) stopped() {
	s.recorded = s.recorded[:s.unsure]
	if len(s.recorded) == 0 {
		s.recorded = nil
	}
}

// gathered moves acked to end: a Pushgateway's samples up to it are in the
// live series, which the push at the window's end sends. Transition (→
// mid-window).
func (s *copyState) gathered(end progress) { s.acked = end }

// windowDone notes that every sample of the window ending at `to` is
// acknowledged. By recorded's invariant the recorded batches were in it.
// Transition (→ between).
func (s *copyState) windowDone(to int64) {
	s.acked = progress{T: to}
	s.recorded, s.unsure = nil, 0
}
