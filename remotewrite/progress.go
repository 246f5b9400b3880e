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

// copyState is where one copy (a MetricAccess to one target) stands. It
// lives in the copy's cursor, so a copier that replaces another on reload
// takes it over, and is changed only by the pass holding the cursor.
//
// The states, by its fields:
//
//	unloaded     !loaded: no pass has run since the process started.
//	between      acked is whole, unsure nil: the next pass reads a new
//	             window, from acked.T+1, max_window or fit long.
//	mid-window   acked.partial(): the window (acked.T, acked.Window] was
//	             cut (max_pending_samples) or a pass stopped in it; the
//	             next pass reads exactly that window again, for the rest.
//	unsure       unsure != nil (always mid-window, or at its start): a
//	             batch went out and its answer was lost; the next pass
//	             reads its window again and first resends exactly the
//	             samples it held, alone.
//
// The transitions: load (unloaded → any), unload (any → unloaded), planBatch (unsure → mid-window
// once a batch past the unsure one is planned), acknowledged (→
// mid-window), lost (→ unsure), gathered (→ mid-window, Pushgateway),
// windowDone (→ between); tooFull and fitted adapt fit, in any state.
type copyState struct {
	// loaded: acked and unsure were set from the state file, or acked from
	// the start a copy without saved progress has.
	loaded bool
	// acked is the end of what the target holds: every sample it covers
	// was acknowledged by the target or refused by it for good (counted as
	// dropped). It only moves forward in the copy order, and is what the
	// state file keeps as the progress.
	acked progress
	// unsure is the end of a batch that may or may not be stored: its
	// request failed after it might have been committed (a timeout), or
	// the process stopped before its answer was saved. Invariant: nil, or
	// in acked's window ahead of acked (unsure.T == acked.T,
	// unsure.partial(), and the same Window when acked.partial()). Its
	// samples after acked are resent as batches of their own, never with
	// new samples, which a receiver that holds them would refuse with them.
	unsure *progress
	// fit is the window length, in milliseconds, that last held at most
	// max_pending_samples; 0 is max_window. It decides only how many reads
	// a window takes, never what is copied.
	fit int64
}

// load sets the starting point once: the saved state when it belongs to
// the same target (ok), else start. An in-flight position that breaks
// unsure's invariant cannot be meant and is dropped. Transition: unloaded →
// any.
func (s *copyState) load(saved savedState, ok bool, start int64) {
	s.loaded = true
	if !ok {
		s.acked = progress{T: start}
		return
	}
	s.acked, s.unsure = saved.Progress, saved.InFlight
	if u := s.unsure; u != nil && (!u.partial() || u.T != s.acked.T || s.acked.partial() && u.Window != s.acked.Window) {
		s.unsure = nil
	}
}

// unload forgets where the copy stands, after a save to a store that may or
// may not have taken it (kubeStore): the next pass loads what the store
// holds. Transition (any → unloaded).
func (s *copyState) unload() { s.loaded = false }

// readPlan is the time range a pass reads.
type readPlan struct {
	from, to int64 // inclusive, in milliseconds
	// fixed: the range is the window acked or unsure lies in, whose
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
	case s.unsure != nil:
		return readPlan{from: from, to: s.unsure.Window, fixed: true}, true
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
	// resend: the samples are (part of) the unsure batch, sent alone. A
	// resent part may end before the unsure batch did (a smaller
	// batch_size since).
	resend bool
	// end is where acked moves once the target has the batch.
	end progress
}

// batchAt is the batch of w from sample i, of at most batchSize samples:
// the samples the unsure batch covers, if the first is one of them (the
// covered ones come first: samples are in progress order), else the next
// batchSize. Plan.
func (s *copyState) batchAt(w *window, i, batchSize int) batchPlan {
	b := batchPlan{n: min(batchSize, len(w.samples)-i)}
	if u := s.unsure; u != nil {
		k := 0
		for k < b.n && u.covers(w.samples[i+k].t, w.series[w.samples[i+k].series]) {
			k++
		}
		if k > 0 {
			b.n, b.resend = k, true
		}
	}
	b.end = w.position(s.acked.T, i+b.n-1)
	return b
}

// planBatch is batchAt; a batch that is not a resend means every sample the
// unsure batch covered is acknowledged, so unsure is cleared. Transition
// (unsure → mid-window).
func (s *copyState) planBatch(w *window, i, batchSize int) batchPlan {
	b := s.batchAt(w, i, batchSize)
	if !b.resend {
		s.unsure = nil
	}
	return b
}

// inFlight is what the state file notes as in flight while next is about
// to be sent (nil: no batch follows): a new batch's end, else the unsure
// batch's, still owed. Plan.
func (s *copyState) inFlight(next *batchPlan) *progress {
	if next != nil && !next.resend {
		return &next.end
	}
	return s.unsure
}

// acknowledged moves acked to the end of b, which the target took (or
// refused for good). unsure stays until a batch past it is planned.
// Transition (→ mid-window).
func (s *copyState) acknowledged(b batchPlan) { s.acked = b.end }

// lost notes that the answer to b never came: the target may hold it, so
// b is the unsure batch. A resend that failed leaves the unsure batch as
// it was. Transition (→ unsure).
func (s *copyState) lost(b batchPlan) {
	if !b.resend {
		s.unsure = &b.end
	}
}

// gathered moves acked to end: a Pushgateway's samples up to it are in the
// live series, which the push at the window's end sends. Transition (→
// mid-window).
func (s *copyState) gathered(end progress) { s.acked = end }

// windowDone notes that every sample of the window ending at `to` is
// acknowledged. By unsure's invariant the unsure batch was in it.
// Transition (→ between).
func (s *copyState) windowDone(to int64) {
	s.acked = progress{T: to}
	s.unsure = nil
}
