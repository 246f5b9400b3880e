package remotewrite

import (
	"errors"
	"fmt"
	"time"

	"go.uber.org/zap"
)

// Status returns a snapshot of the copier's status.
func (c *copier) Status() Status {
	c.mu.Lock()
	s := c.status
	c.mu.Unlock()
	if c.cur != nil {
		s.SamplesSent, s.SamplesFailed, s.SamplesDropped = c.cur.sent.Load(), c.cur.failed.Load(), c.cur.dropped.Load()
		s.SamplesResentRefused = c.cur.resentRefused.Load()
	}
	switch {
	case c.term != nil:
		leader := c.term.ctx.Err() == nil
		s.Lease, s.Leader, s.LeaseHolder = c.term.e.lease, &leader, c.term.e.lastHolder()
	case c.standby != nil:
		leader := false
		s.Lease, s.Leader, s.LeaseHolder = c.standby.lease, &leader, c.standby.lastHolder()
	}
	return s
}

func (c *copier) failed(err error) {
	shown := err.Error()
	if errors.Is(err, errOutsidePolicy) {
		// The status reaches the tenant (MetricAccess status): it must not
		// carry the labels of a series the tenant may not see. The log has them.
		shown = errOutsidePolicy.Error()
	}
	state := stateRetrying
	if errors.Is(err, errStateUnwritable) {
		state = stateUnwritable
	}
	c.mu.Lock()
	repeat := c.status.LastError == shown
	c.status.LastError, c.status.LastErrorTime = shown, time.Now()
	c.mu.Unlock()
	c.setState(state)
	if repeat {
		c.logger.Debug("remote write failed again", zap.Error(err))
		return
	}
	c.logger.Error("remote write failed", zap.Error(err))
}

func (c *copier) succeeded() {
	now := time.Now()
	c.mu.Lock()
	recovered := c.status.LastError != ""
	c.status.LastSuccess, c.status.LastError, c.status.LastErrorTime = now, "", time.Time{}
	c.status.LiveSeries = c.cur.live.len()
	c.mu.Unlock()
	c.setState(stateCopying)
	if recovered {
		c.logger.Info("remote write recovered")
	}
	metrics.lastSuccess.WithLabelValues(c.rw.Namespace).Set(float64(now.UnixNano()) / 1e9)
}

func (c *copier) setCopiedUntil() {
	c.mu.Lock()
	// In a partly sent window only some series are further.
	c.status.CopiedUntil = time.UnixMilli(c.cur.state.acked.T)
	c.mu.Unlock()
}

// setPending sets the copier's samples read and not yet acknowledged; the
// tenant's gauge, which its other copiers share, moves by the difference.
func (c *copier) setPending(n int) {
	c.mu.Lock()
	delta := n - c.status.PendingSamples
	c.status.PendingSamples = n
	c.mu.Unlock()
	if delta != 0 {
		metrics.pending.WithLabelValues(c.rw.Namespace).Add(float64(delta))
	}
}

func (c *copier) countSent(n int) {
	c.cur.sent.Add(uint64(n))
	metrics.sent.WithLabelValues(c.rw.Namespace).Add(float64(n))
}

func (c *copier) countFailed(reason string, n int) {
	c.cur.failed.Add(uint64(n))
	metrics.failed.WithLabelValues(c.rw.Namespace, reason).Add(float64(n))
}

func (c *copier) countDropped(reason string, n int) {
	c.cur.dropped.Add(uint64(n))
	metrics.dropped.WithLabelValues(c.rw.Namespace, reason).Add(float64(n))
}

// The states a copier reports (Status.State, and the copiers gauge).
const (
	stateStarting   = "starting"
	stateCopying    = "copying"
	stateRetrying   = "retrying"
	stateUnwritable = "state_unwritable"
	stateRefused    = "refused"
)

// setState moves the copier to state ("": stopped), and the copiers gauge
// with it.
func (c *copier) setState(state string) {
	c.mu.Lock()
	old := c.status.State
	if old != state {
		c.status.State, c.status.StateSince = state, time.Now()
	}
	c.mu.Unlock()
	if old == state {
		return
	}
	if old != "" {
		metrics.copiers.WithLabelValues(c.rw.Namespace, old).Dec()
	}
	if state != "" {
		metrics.copiers.WithLabelValues(c.rw.Namespace, state).Inc()
	}
}

func (c *copier) state() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.status.State
}

// retrying notes a failed write attempt that the target's client retries:
// the status says so at once, with the cause, not only once the retries
// give up.
func (c *copier) retrying(reason string, err error) {
	msg := "write to the target failed (" + reason + ")"
	if err != nil {
		msg += ": " + err.Error()
	}
	c.mu.Lock()
	c.status.LastError, c.status.LastErrorTime = msg+"; retrying with backoff", time.Now()
	c.mu.Unlock()
	c.setState(stateRetrying)
}

// recovered notes a write the target took: a copy that was retrying is
// copying again.
func (c *copier) recovered() {
	c.mu.Lock()
	was := c.status.State
	if was == stateRetrying {
		c.status.LastError, c.status.LastErrorTime = "", time.Time{}
	}
	c.mu.Unlock()
	if was == stateRetrying {
		c.setState(stateCopying)
	}
}

// unwritable reports whether the copier's last save failed.
func (c *copier) unwritable() bool { return c.saveFailures > 0 }

// saved notes the outcome of a save of the copy's progress: a failure is
// counted, and the copier is state_unwritable until a save works.
func (c *copier) saved(err error) {
	if err == nil {
		if c.saveFailures > 0 {
			c.logger.Info("remote write state saved again; copying resumes", zap.Int("failed_saves", c.saveFailures))
			c.saveFailures = 0
			c.mu.Lock()
			c.status.LastError, c.status.LastErrorTime = "", time.Time{}
			c.mu.Unlock()
			c.setState(stateCopying)
		}
		return
	}
	c.saveFailures++
	metrics.saveFailures.WithLabelValues(c.rw.Namespace).Inc()
	if c.saveFailures == 1 {
		c.logger.Error("cannot save the remote write state; nothing is sent until it can be saved", zap.Error(err))
	}
	c.mu.Lock()
	c.status.LastError, c.status.LastErrorTime = fmt.Errorf("%w: %w", errStateUnwritable, err).Error(), time.Now()
	c.mu.Unlock()
	c.setState(stateUnwritable)
}

// saveBackoff is how long the copier waits before it tries to save again:
// one second, doubling with each failure, at most 30 seconds.
func (c *copier) saveBackoff() time.Duration {
	return min(time.Second<<min(c.saveFailures-1, 5), 30*time.Second)
}

func (c *copier) countResentRefused(reason string, n int) {
	c.cur.resentRefused.Add(uint64(n))
	metrics.resentRefused.WithLabelValues(c.rw.Namespace, reason).Add(float64(n))
}
