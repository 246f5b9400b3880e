package remotewrite

import (
	"context"
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/value"
	"go.uber.org/zap"

	"github.com/prom-tenant/caddy-prom-tenant/tenancy"
	"github.com/prom-tenant/caddy-prom-tenant/tenancy/v1alpha1"
)

// staleAfter is when a series without samples has ended: Prometheus's
// default lookback delta. A series the copier saw end without a staleness
// marker in the source gets one from the copier.
const staleAfter = 5 * time.Minute

// settings are the app's copy settings a copier uses.
type settings struct {
	readDelay       time.Duration
	maxWindow       time.Duration
	initialLookback time.Duration
	batchSize       int
	maxPending      int

	// What the copiers share.
	src      *source
	targets  *targetSettings
	stateDir string        // "" keeps no progress on disk
	limiter  *limiter      // max_in_flight
	kube     *statusWriter // nil: statuses are not written
	logger   *zap.Logger
}

// copier copies one MetricAccess's series to its target: every pass reads
// the samples after its progress from the source by remote read, sends them
// series by series, and moves its progress with each acknowledged batch. Nothing is queued in memory beyond one window: while the target is
// down the copier stays where it is and reads the same window again later.
type copier struct {
	rw        *tenancy.RemoteWrite
	set       *settings
	interval  time.Duration
	target    *resolvedTarget
	targetErr error // the target could not be built, or the copy is refused: reported, never retried
	rule      labelRule
	group     labelRule // a Pushgateway's grouping labels, which it overwrites
	cur       *cursor   // nil when targetErr is set
	logger    *zap.Logger
	// fit is the window length, in milliseconds, that last held at most
	// max_pending_samples; 0 is max_window. Owned by the run goroutine.
	fit int64

	// Owned by the run goroutine: what reportStatus last wrote.
	reported     time.Time
	reportedErr  string
	reportFailed bool

	mu     sync.Mutex // guards status
	status Status

	// Stopping cancels the run's context: a pass stops between batches. A
	// write in flight runs on hard, cancelled only after stopGrace, so that
	// its acknowledgement is saved.
	cancel     context.CancelFunc
	hard       context.Context
	hardCancel context.CancelFunc
	stopped    chan struct{}
}

// stopGrace is how long stopping waits for a write in flight.
const stopGrace = 5 * time.Second

func newCopier(rw *tenancy.RemoteWrite, interval time.Duration, set *settings) *copier {
	c := &copier{
		rw: rw, set: set, interval: interval,
		rule:   newLabelRule(rw.Spec.ExtraLabels, rw.Spec.HonorLabels),
		logger: set.logger.With(zap.String("tenant", rw.Namespace), zap.String("object", rw.Object.Name)),
	}
	c.status = Status{Namespace: rw.Namespace, Object: rw.Object.Name, Source: rw.Object.Source, Interval: interval.String()}
	c.target, c.targetErr = set.targets.newTarget(rw, func(reason string) {
		// Samples count as failed once the write gives up, not per attempt.
		c.logger.Debug("remote write attempt failed; retrying with backoff", zap.String("reason", reason))
	})
	if c.targetErr != nil {
		c.targetErr = fmt.Errorf("invalid target: %w", c.targetErr)
	} else {
		c.status.Target, c.status.Protocol = c.target.id, c.target.protocol
		c.logger = c.logger.With(zap.String("target", c.target.id))
		if t := rw.Spec.Target; t.Type == v1alpha1.TargetPushgateway { // newTarget checked its block
			pg := t.Pushgateway
			key := map[string]string{"job": pg.JobName}
			for k, v := range pg.GroupingKey {
				key[k] = v
			}
			c.group = newLabelRule(key, false)
		}
		var state stateFile
		if set.stateDir != "" && c.target.snapshot == nil {
			state = stateFile{path: filepath.Join(set.stateDir, rw.Namespace, rw.Object.Name+".json")}
		}
		c.cur, c.targetErr = acquireCursor(rw.Key(), c.target.id, state)
	}
	return c
}

// newRefusedCopier is a copier that copies nothing and reports why: it
// holds no target and no cursor.
func newRefusedCopier(rw *tenancy.RemoteWrite, interval time.Duration, set *settings, why error) *copier {
	c := &copier{
		rw: rw, set: set, interval: interval, targetErr: why,
		logger: set.logger.With(zap.String("tenant", rw.Namespace), zap.String("object", rw.Object.Name)),
	}
	c.status = Status{Namespace: rw.Namespace, Object: rw.Object.Name, Source: rw.Object.Source, Interval: interval.String()}
	return c
}

func (c *copier) start() {
	ctx, cancel := context.WithCancel(context.Background())
	c.cancel, c.stopped = cancel, make(chan struct{})
	c.hard, c.hardCancel = context.WithCancel(context.Background())
	gaugesAcquire(c.rw.Namespace)
	go c.run(ctx)
}

// Destruct stops the copier when the last config using it is gone.
func (c *copier) Destruct() error {
	if c.cancel != nil {
		c.cancel()
		select {
		case <-c.stopped:
		case <-time.After(stopGrace):
			c.hardCancel()
			<-c.stopped
		}
		c.hardCancel()
		gaugesRelease(c.rw.Namespace)
	}
	if c.cur != nil {
		releaseCursor(c.rw.Key(), c.target.id)
	}
	return nil
}

func (c *copier) run(ctx context.Context) {
	defer close(c.stopped)
	if c.targetErr != nil {
		c.failed(c.targetErr)
		c.reportStatus(ctx)
		<-ctx.Done()
		return
	}
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		caughtUp, err := c.pass(ctx)
		if err != nil && ctx.Err() == nil {
			c.failed(err)
		}
		c.reportStatus(ctx)
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			timer.Reset(c.interval)
		case caughtUp:
			timer.Reset(c.interval)
		default:
			timer.Reset(0) // catching up: the next window at once
		}
	}
}

// startAt is where a cursor without saved progress starts: initial_lookback
// ago. A Pushgateway holds current values only: its copier starts staleAfter
// back, to know every live series.
func (c *copier) startAt(now time.Time) int64 {
	if c.target.snapshot != nil {
		return now.Add(-c.set.readDelay - staleAfter).UnixMilli()
	}
	return now.Add(-c.set.readDelay - c.set.initialLookback).UnixMilli()
}

// pass copies one window. It reports whether the copier has caught up with
// the present (less read_delay).
func (c *copier) pass(ctx context.Context) (caughtUp bool, err error) {
	// The cursor first, then the tenant's turn: a copier waiting for its
	// predecessor, or for another object of its tenant, must not hold one
	// of the max_in_flight slots meanwhile.
	if err := c.cur.lock(ctx); err != nil {
		return false, err
	}
	defer c.cur.unlock()
	if err := perTenant.acquire(ctx, c.rw.Namespace); err != nil {
		return false, err
	}
	defer perTenant.release(c.rw.Namespace)
	if err := c.set.limiter.acquire(ctx); err != nil {
		return false, err
	}
	defer c.set.limiter.release()
	now := time.Now()
	c.cur.load(c.target.id, c.startAt(now), c.logger)
	c.setCopiedUntil()

	end := now.Add(-c.set.readDelay).UnixMilli()
	from := c.cur.done.readFrom()
	if from > end {
		return true, nil
	}
	var w *window
	if to := c.fixedWindow(); to != 0 {
		// A partly sent window, or one whose last batch is unsure, is read
		// again as it was: the positions refer to the order of its samples.
		w, err = c.readOnce(ctx, from, to, c.set.maxPending, true)
	} else {
		w, err = c.read(ctx, from, min(end, from+c.set.maxWindow.Milliseconds()-1))
	}
	if err != nil {
		return false, err
	}
	defer w.release()
	c.setPending(len(w.samples))
	defer c.setPending(0)
	if c.target.snapshot != nil {
		err = c.pushWindow(c.hard, w)
	} else {
		err = c.sendWindow(ctx, w)
	}
	if err != nil {
		if ctx.Err() != nil {
			c.save() // stopping between batches: no batch is in flight
		}
		return false, err
	}
	if w.truncated {
		// The rest of the window is read on the next pass, at once.
		c.succeeded()
		return false, nil
	}
	c.cur.done = progress{T: w.to}
	if u := c.cur.unsure; u != nil && u.Window <= w.to {
		c.cur.unsure = nil // every sample it could cover was in this window
	}
	c.save()
	c.succeeded()
	return w.to == end, nil
}

// fixedWindow is the end of the window the next read must be, or 0 when
// any window will do.
func (c *copier) fixedWindow() int64 {
	done := c.cur.done
	if done.partial() {
		return done.Window
	}
	if u := c.cur.unsure; u != nil {
		if u.partial() && u.T == done.T {
			return u.Window
		}
		c.cur.unsure = nil // a window after it was sent whole
	}
	return 0
}

// read reads [from, to], or less: it starts with the window length that
// last fit in max_pending_samples and halves it while the window holds more;
// a single millisecond that holds more is cut (the rest follows in the
// next pass). The length grows back while windows hold less than half.
func (c *copier) read(ctx context.Context, from, to int64) (*window, error) {
	if c.fit > 0 {
		to = min(to, from+c.fit-1)
	}
	for {
		w, err := c.readOnce(ctx, from, to, c.set.maxPending, to == from)
		if errors.Is(err, errWindowFull) {
			to = from + (to-from)/2
			c.fit = to - from + 1
			continue
		}
		if err == nil && c.fit > 0 && to-from+1 == c.fit && len(w.samples) < c.set.maxPending/2 {
			c.fit *= 2
			if c.fit >= c.set.maxWindow.Milliseconds() {
				c.fit = 0
			}
		}
		return w, err
	}
}

func (c *copier) readOnce(ctx context.Context, from, to int64, limit int, truncate bool) (*window, error) {
	// Cancelling ends the streamed answers a full window leaves unread.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ss, err := c.set.src.read(ctx, c.rw.Policy, from, to)
	if err != nil {
		return nil, err
	}
	return collect(ss, c.rw.Policy, c.cur.done, from, to, limit, truncate)
}

// sendWindow sends w in batches, moving the progress with each one the
// target acknowledges (or refuses for good), then, if w is whole, ends the
// series that stopped without a staleness marker. A window goes series by
// series, so a series' labels are sent once per batch, not once per sample.
//
// Before each batch the cursor notes on disk how far the batch goes (with
// the previous batch's acknowledgement, in one write). If the process dies
// before the acknowledgement is saved, the next run resends exactly that
// batch, on its own: a receiver that had stored it refuses it as out of
// order, and mixing new samples into it would lose them with it.
func (c *copier) sendWindow(ctx context.Context, w *window) error {
	b := labels.NewBuilder(labels.EmptyLabels())
	out := make([]labels.Labels, len(w.series))
	for i, s := range w.series {
		out[i] = c.rule.apply(b, s)
	}
	// next plans the batch from sample i: its length, and whether it is
	// (part of) the unsure batch, resent alone.
	next := func(i int) (n int, resend bool) {
		n = min(c.set.batchSize, len(w.samples)-i)
		if u := c.cur.unsure; u != nil {
			k := 0 // samples are in progress order, so the covered ones come first
			for k < n && u.covers(w.samples[i+k].t, w.series[w.samples[i+k].series]) {
				k++
			}
			if k > 0 {
				return k, true
			}
			c.cur.unsure = nil
		}
		return n, false
	}
	endOf := func(i, n int) progress {
		last := w.samples[i+n-1]
		return progress{T: c.cur.done.T, Window: w.to, Series: w.series[last.series], SeriesT: last.t}
	}
	if len(w.samples) > 0 {
		if n, resend := next(0); !resend {
			c.saveInFlight(endOf(0, n))
		}
	}
	for i := 0; i < len(w.samples); {
		if err := ctx.Err(); err != nil {
			return err // stopping: between batches, nothing is half sent
		}
		n, resend := next(i)
		chunk := w.samples[i : i+n]
		end := endOf(i, n)
		if err := c.write(c.hard, &batch{series: out, samples: chunk, hists: w.hists}, resend); err != nil {
			// A failed request may still have been stored (a timeout after
			// the receiver committed): the next try sends this batch alone.
			if !resend {
				c.cur.unsure = &end
			}
			return err
		}
		// A resent part may end before the unsure batch did (a smaller
		// batch_size since): unsure stays until a sample past it comes.
		c.cur.done = end
		c.trackLast(w, chunk)
		i += n
		c.setPending(len(w.samples) - i)
		var inFlight *progress
		if i < len(w.samples) {
			if n, resend := next(i); !resend {
				e := endOf(i, n)
				inFlight = &e
			}
		}
		c.saveWith(inFlight)
	}
	if w.truncated {
		return nil
	}
	return c.endVanished(c.hard, w.to)
}

// write sends one batch. A refusal for good is counted and logged, and
// copying goes on; any other failure is returned, to be retried. resend
// says the batch may have been stored already (see sendWindow).
func (c *copier) write(ctx context.Context, b *batch, resend bool) error {
	err := c.target.batch.send(ctx, b)
	var te *targetError
	var pw *partialWrite
	switch {
	case err == nil:
		c.countSent(len(b.samples))
		return nil
	case errors.As(err, &pw):
		c.countSent(pw.written)
		c.countDropped("partial_write", len(b.samples)-pw.written)
		c.logger.Warn("target wrote only part of a batch; the rest is dropped", zap.Int("written", pw.written), zap.Int("samples", len(b.samples)))
		return nil
	case errors.As(err, &te) && te.drop && resend:
		c.countDropped("resent_"+te.reason, len(b.samples))
		c.logger.Warn("target refused a batch resent after a restart interrupted its acknowledgement; it most likely holds it already",
			zap.String("reason", te.reason), zap.Int("samples", len(b.samples)), zap.Error(err))
		return nil
	case errors.As(err, &te) && te.drop:
		c.countDropped(te.reason, len(b.samples))
		c.logger.Warn("target refused samples; they are dropped", zap.String("reason", te.reason), zap.Int("samples", len(b.samples)), zap.Error(err))
		return nil
	case errors.As(err, &te):
		c.countFailed(te.reason, len(b.samples))
	}
	return err
}

// track notes a sample the target has; a staleness marker ends the series.
func (c *copier) track(lset labels.Labels, s sample) {
	if s.hist == 0 && value.IsStaleNaN(s.v) {
		c.cur.live.remove(lset)
		return
	}
	st := c.cur.live.add(lset)
	st.lastT, st.lastV = s.t, s.v
}

// trackLast tracks the last sample of each series in samples, which are
// series by series: it alone says what the target now shows of it.
func (c *copier) trackLast(w *window, samples []sample) {
	for i, s := range samples {
		if i+1 == len(samples) || samples[i+1].series != s.series {
			c.track(w.series[s.series], s)
		}
	}
}

// endVanished sends a staleness marker at `at` for every series that had no
// sample for staleAfter and no marker of its own, so that the target stops
// showing it at once, as the source does.
func (c *copier) endVanished(ctx context.Context, at int64) error {
	var ended []*seriesState
	for _, st := range c.cur.live.all() {
		if st.lastT <= at-staleAfter.Milliseconds() {
			ended = append(ended, st)
		}
	}
	if len(ended) == 0 {
		return nil
	}
	slices.SortFunc(ended, func(a, b *seriesState) int { return labels.Compare(a.lset, b.lset) })
	b := labels.NewBuilder(labels.EmptyLabels())
	m := &batch{}
	for i, st := range ended {
		m.series = append(m.series, c.rule.apply(b, st.lset))
		m.samples = append(m.samples, sample{t: at, v: math.Float64frombits(value.StaleNaN), series: int32(i)})
	}
	if err := c.write(ctx, m, false); err != nil {
		return err
	}
	for _, st := range ended {
		c.cur.live.remove(st.lset)
	}
	return nil
}

// pushWindow updates the current value of every series from w and pushes
// all live series to the Pushgateway, replacing its group.
func (c *copier) pushWindow(ctx context.Context, w *window) error {
	histograms := 0
	for _, s := range w.samples {
		if s.hist != 0 {
			histograms++ // the Pushgateway takes no native histograms without types
			continue
		}
		c.track(w.series[s.series], s)
	}
	if w.truncated {
		// The group is pushed once the window is whole: a push replaces it,
		// and the series of the rest are not known yet.
		if n := len(w.samples); n > 0 {
			last := w.samples[n-1]
			c.cur.done = progress{T: c.cur.done.T, Window: w.to, Series: w.series[last.series], SeriesT: last.t}
		}
		if histograms > 0 {
			c.countDropped("native_histogram", histograms)
		}
		return nil
	}
	states := c.cur.live.all()
	states = slices.DeleteFunc(states, func(st *seriesState) bool {
		if st.lastT <= w.to-staleAfter.Milliseconds() {
			c.cur.live.remove(st.lset)
			return true
		}
		return false
	})
	slices.SortFunc(states, func(a, b *seriesState) int { return labels.Compare(a.lset, b.lset) })
	b := labels.NewBuilder(labels.EmptyLabels())
	series := make([]labels.Labels, len(states))
	values := make([]float64, len(states))
	for i, st := range states {
		series[i] = c.group.apply(b, c.rule.apply(b, st.lset))
		values[i] = st.lastV
	}
	if err := c.target.snapshot.push(ctx, series, values); err != nil {
		var te *targetError
		if errors.As(err, &te) {
			c.countFailed(te.reason, len(series))
		}
		return err
	}
	c.countSent(len(series))
	if histograms > 0 {
		c.countDropped("native_histogram", histograms)
	}
	return nil
}

// save writes the progress; a Pushgateway's is not kept (it holds current
// values only).
func (c *copier) save() { c.saveWith(nil) }

// saveWith writes the progress and where the next batch, about to be sent,
// ends (nil: none, or the unsure batch still).
func (c *copier) saveWith(inFlight *progress) {
	c.setCopiedUntil()
	if c.target.snapshot != nil {
		return
	}
	if inFlight == nil {
		inFlight = c.cur.unsure
	}
	if err := c.cur.save(c.target.id, inFlight); err != nil {
		c.logger.Error("saving remote write state", zap.Error(err))
	}
}

// saveInFlight notes that a batch ending at end is about to be sent.
func (c *copier) saveInFlight(end progress) {
	if err := c.cur.save(c.target.id, &end); err != nil {
		c.logger.Error("saving remote write state", zap.Error(err))
	}
}

// reportStatus writes the copier's state into the MetricAccess, for objects
// from the Kubernetes API: at once when the error changes, else at most
// every statusEvery.
func (c *copier) reportStatus(ctx context.Context) {
	if c.set.kube == nil || c.rw.Object.Source != tenancy.SourceKubernetes {
		return
	}
	s := c.Status()
	if s.LastError == c.reportedErr && !c.reported.IsZero() && time.Since(c.reported) < statusEvery {
		return
	}
	if err := c.set.kube.write(ctx, c.rw.Namespace, c.rw.Object.Name, s); err != nil {
		if !c.reportFailed {
			c.logger.Warn("writing the MetricAccess's remote-write status", zap.Error(err))
		}
		c.reportFailed = true
		return
	}
	c.reported, c.reportedErr, c.reportFailed = time.Now(), s.LastError, false
}
