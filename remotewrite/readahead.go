package remotewrite

import (
	"context"
)

// Reading the next window while this one is delivered. A copier that is
// behind (at start, after an outage) would otherwise read a window, then
// send it, then read the next: the source idles while the target writes,
// and the other way round. So while a pass delivers its window, it reads
// the window after it, planned as the next pass plans it if this one is
// delivered whole; the next pass takes that read only if it plans exactly
// the same range from the same position, and reads as before otherwise
// (the window was cut, a batch failed, another copier of the cursor moved
// it, the present moved the end). What is read ahead is what that read
// would hold: the same range, collected from the same position (the
// window's start, nothing of it acknowledged), with the same bound.
//
// Only the read overlaps: batches go out one at a time and in order, and
// the copy state is changed only by the pass (deliver and the next pass's
// take). A read ahead ends within the pass that started it, so it holds
// the pass's max_in_flight slot; between two passes of a copier that is
// behind it holds up to max_pending_samples more, so such a copier holds
// at most twice max_pending_samples.
type readAhead struct {
	plan   readPlan
	cancel context.CancelFunc
	done   chan struct{}
	w      *window // set once done is closed
	err    error
}

// readNext starts reading the window after w, which p read, if the copier
// is behind end (the present less read_delay): the read the next pass
// plans once w is delivered whole. A fixed or cut window is followed by
// the rest of it, which depends on how its delivery goes: nothing is read
// ahead.
func (c *copier) readNext(ctx context.Context, p readPlan, w *window, end int64) {
	if p.fixed || w.truncated || w.to >= end {
		return
	}
	after := copyState{acked: progress{T: w.to}, fit: c.cur.state.fit}
	next, ok := after.plan(end, c.cfg.maxWindow.Milliseconds())
	if !ok {
		return
	}
	ctx, cancel := context.WithCancel(ctx)
	ra := &readAhead{plan: next, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(ra.done)
		defer cancel()
		ra.w, ra.err = c.readOnce(ctx, next, after.acked)
	}()
	c.ahead = ra
}

// settleAhead waits for the read started ahead, when the pass ends, and
// keeps it for the next pass only if the pass delivered its whole window
// (keep); else it is stopped and dropped.
func (c *copier) settleAhead(keep bool) {
	ra := c.ahead
	if ra == nil {
		return
	}
	if !keep {
		ra.cancel()
	}
	<-ra.done
	if !keep || ra.err != nil {
		ra.w.release()
		c.ahead = nil
	}
}

// takeAhead returns the window read ahead if it is the read of p, nil if
// there is none or it read something else (dropped). A window that did not
// fit max_pending_samples is not kept (settleAhead): p is then read, and
// halved, as without a read ahead.
func (c *copier) takeAhead(p readPlan) *window {
	ra := c.ahead
	if ra == nil {
		return nil
	}
	c.ahead = nil
	<-ra.done
	if ra.err != nil || ra.plan != p {
		ra.w.release()
		return nil
	}
	c.cur.state.fitted(p.from, p.to, len(ra.w.samples), c.cfg.maxPending, c.cfg.maxWindow.Milliseconds())
	return ra.w
}
