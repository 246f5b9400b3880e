package remotewrite

import (
	"errors"
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
	c.mu.Lock()
	repeat := c.status.LastError == shown
	c.status.LastError, c.status.LastErrorTime = shown, time.Now()
	c.mu.Unlock()
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
