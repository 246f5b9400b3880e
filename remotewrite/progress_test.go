package remotewrite

import (
	"reflect"
	"testing"

	"github.com/prometheus/prometheus/model/labels"
)

func TestProgressCovers(t *testing.T) {
	a := labels.FromStrings("__name__", "m", "pod", "a")
	b := labels.FromStrings("__name__", "m", "pod", "b")
	c := labels.FromStrings("__name__", "m", "pod", "c")
	// Up to 100 everything; in the window (100, 200], series before b, and
	// b up to 150.
	partial := progress{T: 100, Window: 200, Series: b, SeriesT: 150}
	for _, tc := range []struct {
		name string
		p    progress
		t    int64
		lset labels.Labels
		want bool
	}{
		{"at T, any series", progress{T: 100}, 100, c, true},
		{"before T, any series", progress{T: 100}, -5, a, true},
		{"after T", progress{T: 100}, 101, a, false},
		{"zero progress covers 0", progress{}, 0, a, true},
		{"zero progress not 1", progress{}, 1, a, false},

		{"partial: at T, series after", partial, 100, c, true},
		{"partial: before T, series after", partial, 50, c, true},
		{"partial: series before, first ms of the window", partial, 101, a, true},
		{"partial: series before, end of the window", partial, 200, a, true},
		{"partial: series before, after the window", partial, 201, a, false},
		{"partial: Series, first ms of the window", partial, 101, b, true},
		{"partial: Series at SeriesT", partial, 150, b, true},
		{"partial: Series after SeriesT", partial, 151, b, false},
		{"partial: Series at the end of the window", partial, 200, b, false},
		{"partial: series after, first ms of the window", partial, 101, c, false},
		{"partial: series after, end of the window", partial, 200, c, false},
		// A label set that is a prefix of Series sorts before it; one that
		// has Series as a prefix sorts after it.
		{"partial: prefix of Series", progress{T: 100, Window: 200, Series: labels.FromStrings("__name__", "m", "pod", "a", "x", "1"), SeriesT: 101}, 150, a, true},
		{"partial: Series is a prefix", progress{T: 100, Window: 200, Series: a, SeriesT: 200}, 150, labels.FromStrings("__name__", "m", "pod", "a", "x", "1"), false},
		{"Series, SeriesT at the end of the window", progress{T: 100, Window: 200, Series: b, SeriesT: 200}, 200, b, true},
		// SeriesT never reaches past Window.
		{"SeriesT after Window", progress{T: 100, Window: 120, Series: b, SeriesT: 150}, 130, b, false},

		// Without a window beyond T, Series covers nothing more.
		{"Series, no Window", progress{T: 100, Series: b, SeriesT: 150}, 101, a, false},
		{"Series, Window at T", progress{T: 100, Window: 100, Series: b, SeriesT: 100}, 101, a, false},
		{"Window, no Series", progress{T: 100, Window: 200, SeriesT: 150}, 101, a, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.p.covers(tc.t, tc.lset); got != tc.want {
				t.Errorf("progress %+v covers(%d, %s) = %v, want %v", tc.p, tc.t, tc.lset, got, tc.want)
			}
		})
	}
}

func TestProgressPartial(t *testing.T) {
	b := labels.FromStrings("pod", "b")
	for _, tc := range []struct {
		p    progress
		want bool
	}{
		{progress{T: 100}, false},
		{progress{T: 100, Window: 200}, false},
		{progress{T: 100, Series: b, SeriesT: 100}, false},
		{progress{T: 100, Window: 100, Series: b, SeriesT: 100}, false},
		{progress{T: 100, Window: 101, Series: b, SeriesT: 101}, true},
		{progress{T: 100, Window: 200, Series: b, SeriesT: 100}, true}, // nothing of b yet
		{progress{T: -5, Window: 0, Series: b}, true},
	} {
		if got := tc.p.partial(); got != tc.want {
			t.Errorf("%+v.partial() = %v, want %v", tc.p, got, tc.want)
		}
	}
}

func TestProgressReadFrom(t *testing.T) {
	a := labels.FromStrings("pod", "a")
	last := labels.FromStrings("~", "~") // after every other label set
	for _, tc := range []struct {
		p    progress
		want int64
	}{
		{progress{T: 100}, 101}, // all of 100 is done
		{progress{T: -1}, 0},
		// A partly sent window is read again from its start.
		{progress{T: 100, Window: 200, Series: a, SeriesT: 150}, 101},
		{progress{T: 100, Window: 200, Series: last, SeriesT: 200}, 101},
	} {
		if got := tc.p.readFrom(); got != tc.want {
			t.Errorf("%+v.readFrom() = %d, want %d", tc.p, got, tc.want)
		}
		// Whatever readFrom returns, the sample at readFrom-1 is covered
		// for every series, so a read from there loses nothing.
		if !tc.p.covers(tc.p.readFrom()-1, last) {
			t.Errorf("%+v: a sample just before readFrom is not covered", tc.p)
		}
		// And a read from there gets something new: a series after Series
		// at readFrom is not covered.
		if tc.p.covers(tc.p.readFrom(), labels.FromStrings("~~", "~")) {
			t.Errorf("%+v: every series at readFrom is covered", tc.p)
		}
	}
}

// testProgressEqual reports whether two positions are the same.
func testProgressEqual(a, b progress) bool {
	return a.T == b.T && a.Window == b.Window && a.SeriesT == b.SeriesT && labels.Equal(a.Series, b.Series)
}

func TestCopyStatePlan(t *testing.T) {
	a := labels.FromStrings("__name__", "m", "pod", "a")
	mid := progress{T: 100, Window: 400, Series: a, SeriesT: 150}
	for _, tc := range []struct {
		name     string
		st       copyState
		end      int64
		want     readPlan
		caughtUp bool
	}{
		{"between: max_window", copyState{acked: progress{T: 100}}, 1000, readPlan{from: 101, to: 400}, false},
		{"between: up to end", copyState{acked: progress{T: 100}}, 200, readPlan{from: 101, to: 200}, false},
		{"between: the length that fit", copyState{acked: progress{T: 100}, fit: 50}, 1000, readPlan{from: 101, to: 150}, false},
		{"caught up", copyState{acked: progress{T: 1000}}, 1000, readPlan{}, true},
		{"mid-window: the same window, whatever fit says", copyState{acked: mid, fit: 10}, 1000, readPlan{from: 101, to: 400, fixed: true}, false},
		{"recorded: their window", copyState{acked: progress{T: 100}, recorded: []progress{mid}}, 1000, readPlan{from: 101, to: 400, fixed: true}, false},
		{"mid-window, end moved back (read_delay grew)", copyState{acked: mid}, 50, readPlan{}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := tc.st
			got, ok := tc.st.plan(tc.end, 300)
			if got != tc.want || ok == tc.caughtUp {
				t.Errorf("plan = %+v, %v; want %+v, %v", got, ok, tc.want, !tc.caughtUp)
			}
			if !reflect.DeepEqual(tc.st, before) {
				t.Errorf("plan changed the state: %+v, was %+v", tc.st, before)
			}
		})
	}
}

// load resumes the saved state of the same target, every recorded batch
// unsure; drops recorded batches that no run saves (outside the acked
// window, not ahead of acked, out of order); and starts a copy without
// saved state at start.
func TestCopyStateLoad(t *testing.T) {
	a := labels.FromStrings("__name__", "m", "pod", "a")
	b := labels.FromStrings("__name__", "m", "pod", "b")
	acked := progress{T: 100, Window: 400, Series: a, SeriesT: 120}
	inWindow := progress{T: 100, Window: 400, Series: a, SeriesT: 150}
	later := progress{T: 100, Window: 400, Series: b, SeriesT: 110}
	for _, tc := range []struct {
		name         string
		saved        savedState
		ok           bool
		wantAcked    progress
		wantRecorded []progress
	}{
		{"nothing saved", savedState{}, false, progress{T: 7}, nil},
		{"resumed", savedState{Progress: acked, Batches: []progress{inWindow, later}}, true, acked, []progress{inWindow, later}},
		{"recorded at a window's start", savedState{Progress: progress{T: 100}, Batches: []progress{inWindow}}, true, progress{T: 100}, []progress{inWindow}},
		{"recorded in an earlier window", savedState{Progress: progress{T: 400}, Batches: []progress{inWindow}}, true, progress{T: 400}, nil},
		{"recorded in another window", savedState{Progress: acked, Batches: []progress{{T: 100, Window: 300, Series: a, SeriesT: 150}}}, true, acked, nil},
		{"recorded not in a window", savedState{Progress: progress{T: 100}, Batches: []progress{{T: 100}}}, true, progress{T: 100}, nil},
		{"recorded behind acked", savedState{Progress: inWindow, Batches: []progress{acked}}, true, inWindow, nil},
		{"recorded out of order", savedState{Progress: acked, Batches: []progress{later, inWindow}}, true, acked, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var st copyState
			st.load(tc.saved, tc.ok, 7)
			if !st.loaded || !reflect.DeepEqual(st.acked, tc.wantAcked) || !reflect.DeepEqual(st.recorded, tc.wantRecorded) || st.unsure != len(tc.wantRecorded) {
				t.Errorf("loaded %v, acked %+v, recorded %+v (%d unsure); want acked %+v, recorded %+v, all unsure",
					st.loaded, st.acked, st.recorded, st.unsure, tc.wantAcked, tc.wantRecorded)
			}
		})
	}
}

// A window with recorded batches after a restart: each goes alone at its
// recorded boundaries, as a resend, whatever batch_size is now (smaller: in
// parts; larger: still cut at the recorded end); then the rest is recorded
// in groups of batchesPerSave before it is sent. The state moves as each
// batch is acknowledged or lost.
func TestCopyStateBatches(t *testing.T) {
	a := labels.FromStrings("__name__", "m", "pod", "a")
	b := labels.FromStrings("__name__", "m", "pod", "b")
	w := &window{from: 101, to: 400, series: []labels.Labels{a, b}, samples: []sample{
		{t: 110, series: 0}, {t: 120, series: 0}, {t: 130, series: 0},
		{t: 110, series: 1}, {t: 120, series: 1}, {t: 130, series: 1},
	}}
	end := func(s labels.Labels, t int64) progress { return progress{T: 100, Window: 400, Series: s, SeriesT: t} }
	// The last run recorded batches of 2 samples: [a110 a120] [a130 b110].
	st := copyState{}
	st.load(savedState{Progress: progress{T: 100}, Batches: []progress{end(a, 120), end(b, 110)}}, true, 0)

	// batch_size is 4 now: the first recorded batch is still 2 samples.
	first := st.planBatch(w, 0, 4)
	if first.n != 2 || !first.recorded || !first.resend || !reflect.DeepEqual(first.end, end(a, 120)) {
		t.Fatalf("first batch %+v, want the 2 samples of the first recorded batch, resent, ending at a@120", first)
	}
	st.lost(first) // a resend that fails leaves the recorded batches as they were
	if len(st.recorded) != 2 || st.unsure != 2 {
		t.Fatalf("a lost resend changed the recorded batches: %+v, %d unsure", st.recorded, st.unsure)
	}
	st.acknowledged(first)
	if !reflect.DeepEqual(st.acked, end(a, 120)) || len(st.recorded) != 1 || st.unsure != 1 {
		t.Fatalf("after the first: acked %+v, recorded %+v, %d unsure", st.acked, st.recorded, st.unsure)
	}

	// batch_size is 1 now: the second recorded batch goes in two parts,
	// recorded first (acknowledgements are not saved one by one: a restart
	// must resend each part alone, not the whole batch, held in part),
	// both resends, neither with a sample past its end.
	part := st.planBatch(w, 2, 1)
	if part.n != 1 || part.recorded {
		t.Fatalf("first part %+v, want a@130 alone, to be recorded first", part)
	}
	parts := st.toRecord(w, 2, 1, batchesPerSave)
	if want := []progress{end(a, 130), end(b, 110)}; !reflect.DeepEqual(parts, want) {
		t.Fatalf("parts to record %+v, want %+v", parts, want)
	}
	st.recordBatches(parts)
	if st.unsure != 2 {
		t.Fatalf("the parts of an unsure batch: %d unsure, want 2", st.unsure)
	}
	part = st.planBatch(w, 2, 1)
	if part.n != 1 || !part.recorded || !part.resend || !reflect.DeepEqual(part.end, end(a, 130)) {
		t.Fatalf("first part %+v, want a@130 alone, recorded, resent", part)
	}
	st.acknowledged(part)
	if len(st.recorded) != 1 {
		t.Fatalf("after the first part: recorded %+v, want the second part", st.recorded)
	}
	part = st.planBatch(w, 3, 1)
	if part.n != 1 || !part.resend || !reflect.DeepEqual(part.end, end(b, 110)) {
		t.Fatalf("second part %+v, want b@110 alone, resent", part)
	}
	st.acknowledged(part)
	if st.recorded != nil || st.unsure != 0 {
		t.Fatalf("after the recorded batches: recorded %+v, %d unsure", st.recorded, st.unsure)
	}

	// The rest is new: it must be recorded before it is sent.
	fresh := st.planBatch(w, 4, 1)
	if fresh.recorded || fresh.resend {
		t.Fatalf("a batch past the recorded ones %+v: not recorded yet, not a resend", fresh)
	}
	ends := st.toRecord(w, 4, 1, batchesPerSave)
	if want := []progress{end(b, 120), end(b, 130)}; !reflect.DeepEqual(ends, want) {
		t.Fatalf("next batches %+v, want %+v (two of one sample, the window's end)", ends, want)
	}
	st.recordBatches(ends)
	if got := st.saved("x"); !reflect.DeepEqual(got.Batches, ends) || !reflect.DeepEqual(got.Progress, end(b, 110)) {
		t.Fatalf("state to save %+v, want acked b@110 and the new batches", got)
	}
	fresh = st.batchAt(w, 4, 1)
	if fresh.n != 1 || !fresh.recorded || fresh.resend {
		t.Fatalf("recorded new batch %+v, want 1 sample, not a resend", fresh)
	}
	st.lost(fresh)
	if st.unsure != 1 {
		t.Fatalf("a lost batch left %d unsure, want 1", st.unsure)
	}
	// The next pass reads the same window and resends the lost batch alone.
	if p, ok := st.plan(1000, 1000); !ok || p != (readPlan{from: 101, to: 400, fixed: true}) {
		t.Fatalf("plan after a lost batch %+v, %v; want the window again", p, ok)
	}
	if again := st.planBatch(w, 4, 4); again.n != 1 || !again.resend {
		t.Fatalf("resend %+v, want the lost batch alone, resent", again)
	}
	st.acknowledged(st.batchAt(w, 4, 4))
	// The batch after it was recorded and never sent: not a resend.
	if next := st.planBatch(w, 5, 4); next.n != 1 || !next.recorded || next.resend {
		t.Fatalf("the recorded batch after the lost one %+v: recorded, not a resend", next)
	}
	// Stopping now drops it (never sent): the next run cuts it anew.
	st.stopped()
	if st.recorded != nil {
		t.Fatalf("stopping kept recorded batches never sent: %+v", st.recorded)
	}
	st.windowDone(w.to)
	if st.recorded != nil || st.unsure != 0 || !reflect.DeepEqual(st.acked, progress{T: 400}) {
		t.Fatalf("after the window: acked %+v, recorded %+v", st.acked, st.recorded)
	}
}

// fit halves while a range is too full and doubles back to max_window
// while ranges of its length hold less than half of max_pending_samples.
func TestCopyStateFit(t *testing.T) {
	var st copyState
	if to := st.tooFull(1, 100); to != 50 || st.fit != 50 {
		t.Fatalf("tooFull(1, 100) = %d, fit %d; want 50, 50", to, st.fit)
	}
	st.fitted(1, 50, 60, 100, 200) // more than half: stays
	if st.fit != 50 {
		t.Fatalf("fit %d after a range held more than half, want 50", st.fit)
	}
	st.fitted(1, 20, 10, 100, 200) // a shorter range (the end was near): stays
	if st.fit != 50 {
		t.Fatalf("fit %d after a shorter range, want 50", st.fit)
	}
	st.fitted(1, 50, 10, 100, 200)
	if st.fit != 100 {
		t.Fatalf("fit %d, want 100", st.fit)
	}
	st.fitted(1, 100, 10, 100, 200)
	if st.fit != 0 {
		t.Fatalf("fit %d at max_window, want 0 (max_window)", st.fit)
	}
}
