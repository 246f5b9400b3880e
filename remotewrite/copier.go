package remotewrite

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/value"
	"go.uber.org/zap"

	"github.com/prom-tenant/caddy-prom-tenant/tenancy"
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
	stores   *kubeStores   // set: progress is kept in ConfigMaps (leader election), not in stateDir
	passes   *limiter      // max_in_flight
	kube     *statusWriter // nil: statuses are not written
	logger   *zap.Logger
}

// delivery is how a copier hands a window to its kind of target: the one
// place where the kinds differ.
type delivery interface {
	// lookback is how far before the present (less read_delay) a copy
	// without saved progress starts.
	lookback(cfg *settings) time.Duration
	// keepsProgress reports whether the copy's progress is saved, to resume
	// after a restart.
	keepsProgress() bool
	// deliver hands w to the target, moving c's copy state as the target
	// takes it. It stops between batches when ctx is done; a write in
	// flight runs on c.writes.
	deliver(ctx context.Context, c *copier, w *window) error
}

// copier copies one MetricAccess's series to its target: every pass reads
// the samples after its progress from the source by remote read and hands
// them to the target (delivery), which moves the progress as the target
// takes them. Nothing is queued in memory beyond one window: while the
// target is down the copier stays where it is and reads the same window
// again later. The steps of a pass are in pass; the states in progress.go.
type copier struct {
	rw        *tenancy.RemoteWrite
	cfg       *settings
	interval  time.Duration
	target    *resolvedTarget
	targetErr error // the target could not be built, or the copy is refused: reported, never retried
	rule      labelRule
	cur       *cursor // nil when targetErr is set
	curKey    string  // the object part of cur's key
	logger    *zap.Logger

	// With leader election: the term of the Lease this copier runs in (it
	// stops when the term ends), or, for a standby copier, the election
	// whose Lease another replica holds (it never runs).
	term    *leaseTerm
	standby *election

	// Owned by the run goroutine: what reportStatus last wrote, and the
	// next window, read while this one is delivered (readahead.go).
	reported      time.Time
	reportedErr   string
	reportedState string
	reportFailed  bool
	saveFailures  int // consecutive; sets the backoff of saveBackoff
	ahead         *readAhead

	mu     sync.Mutex // guards status
	status Status

	// Stopping cancels the run's context: a pass stops between batches. A
	// write in flight runs on writes, cancelled only after stopGrace, so
	// that its acknowledgement is saved.
	cancel       context.CancelFunc
	writes       context.Context
	cancelWrites context.CancelFunc
	stopped      chan struct{}
}

// stopGrace is how long stopping waits for a write in flight.
const stopGrace = 5 * time.Second

// newCopier makes the copier of rw; term is the Lease term it runs in, nil
// without leader election.
func newCopier(rw *tenancy.RemoteWrite, interval time.Duration, cfg *settings, term *leaseTerm) *copier {
	c := &copier{
		rw: rw, cfg: cfg, interval: interval, term: term, curKey: rw.Key(),
		rule:   newLabelRule(rw.Spec.ExtraLabels, rw.Spec.HonorLabels),
		logger: cfg.logger.With(zap.String("tenant", rw.Namespace), zap.String("object", rw.Object.Name)),
	}
	c.status = Status{Namespace: rw.Namespace, Object: rw.Object.Name, Source: rw.Object.Source, Interval: interval.String()}
	c.target, c.targetErr = cfg.targets.newTarget(rw, func(reason string, err error) {
		// Samples count as failed once the write gives up, not per attempt;
		// the status (the object's too) says at once that the copy is
		// retrying. The write runs on the run goroutine, which owns
		// reportStatus.
		c.logger.Debug("remote write attempt failed; retrying with backoff", zap.String("reason", reason), zap.Error(err))
		c.retrying(reason, err)
		c.reportStatus(c.writes)
	})
	if c.targetErr != nil {
		c.targetErr = fmt.Errorf("invalid target: %w", c.targetErr)
	} else {
		c.status.Target, c.status.Protocol = c.target.id, c.target.protocol
		c.logger = c.logger.With(zap.String("target", c.target.id))
		var store progressStore = stateFile{}
		switch {
		case !c.target.delivery.keepsProgress():
		case term != nil && cfg.stores != nil:
			// Each term loads the progress anew, from where every replica
			// keeps it.
			store = cfg.stores.store(rw.Key(), c.target.id, c.legacyStateFile())
			c.curKey = fmt.Sprintf("%s#%s@%d", rw.Key(), term.e.lease, term.n)
		case cfg.stateDir != "":
			store = c.legacyStateFile()
		}
		c.cur, c.targetErr = acquireCursor(c.curKey, c.target.id, store)
	}
	return c
}

// legacyStateFile is where the copy's progress is kept without leader
// election: none without state_dir.
func (c *copier) legacyStateFile() stateFile {
	if c.cfg.stateDir == "" {
		return stateFile{}
	}
	return stateFile{path: filepath.Join(c.cfg.stateDir, c.rw.Namespace, c.rw.Object.Name+".json")}
}

// newRefusedCopier is a copier that copies nothing and reports why: it
// holds no target and no cursor.
func newRefusedCopier(rw *tenancy.RemoteWrite, interval time.Duration, cfg *settings, why error) *copier {
	c := &copier{
		rw: rw, cfg: cfg, interval: interval, targetErr: why,
		logger: cfg.logger.With(zap.String("tenant", rw.Namespace), zap.String("object", rw.Object.Name)),
	}
	c.status = Status{Namespace: rw.Namespace, Object: rw.Object.Name, Source: rw.Object.Source, Interval: interval.String()}
	return c
}

// newStandbyCopier is the copier of an object whose Lease another replica
// holds: it never runs, and its status says who copies.
func newStandbyCopier(rw *tenancy.RemoteWrite, interval time.Duration, cfg *settings, e *election) *copier {
	c := &copier{rw: rw, cfg: cfg, interval: interval, standby: e, logger: cfg.logger}
	c.status = Status{Namespace: rw.Namespace, Object: rw.Object.Name, Source: rw.Object.Source, Interval: interval.String()}
	return c
}

func (c *copier) start() {
	parent := context.Background()
	if c.term != nil {
		parent = c.term.ctx
	}
	ctx, cancel := context.WithCancel(parent)
	c.cancel, c.stopped = cancel, make(chan struct{})
	c.writes, c.cancelWrites = context.WithCancel(context.Background())
	if c.term != nil {
		// A deposed copier sends nothing more: the write in flight is
		// cancelled too (its end is among the recorded batches, so the
		// next leader resends it alone), not given stopGrace.
		context.AfterFunc(c.term.ctx, c.cancelWrites)
	}
	process.tenants.started(c.rw.Namespace)
	c.setState(stateStarting)
	go c.run(ctx)
}

// Destruct stops the copier when the last config using it is gone.
func (c *copier) Destruct() error {
	if c.cancel != nil {
		c.cancel()
		select {
		case <-c.stopped:
		case <-time.After(stopGrace):
			c.cancelWrites()
			<-c.stopped
		}
		c.cancelWrites()
		c.setState("")
		process.tenants.stopped(c.rw.Namespace)
	}
	if c.cur != nil {
		releaseCursor(c.curKey, c.target.id)
	}
	return nil
}

func (c *copier) run(ctx context.Context) {
	defer close(c.stopped)
	if c.targetErr != nil {
		c.failed(c.targetErr)
		c.setState(stateRefused)
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
		case errors.Is(err, errStateUnwritable):
			timer.Reset(c.saveBackoff())
		case err != nil:
			timer.Reset(c.interval)
		case caughtUp:
			timer.Reset(c.interval)
		default:
			timer.Reset(0) // catching up: the next window at once
		}
	}
}

// pass copies one window, in four steps: plan it from the copy state, read
// it, deliver it, save the progress. It reports whether the copier has
// caught up with the present (less read_delay).
func (c *copier) pass(ctx context.Context) (caughtUp bool, err error) {
	// The cursor first, then the tenant's turn: a copier waiting for its
	// predecessor, or for another object of its tenant, must not hold one
	// of the max_in_flight slots meanwhile.
	if err := c.cur.lock(ctx); err != nil {
		return false, err
	}
	defer c.cur.unlock()
	if err := process.tenants.takeTurn(ctx, c.rw.Namespace); err != nil {
		return false, err
	}
	defer process.tenants.giveTurn(c.rw.Namespace)
	if err := c.cfg.passes.acquire(ctx); err != nil {
		return false, err
	}
	defer c.cfg.passes.release()
	// Each wait above may have ended with ctx done and the slot free at
	// once (select picks at random): a deposed copier must not go on to
	// load, which would claim the progress back from the new leader.
	if err := ctx.Err(); err != nil {
		return false, err
	}
	st := &c.cur.state
	now := time.Now()
	if err := c.cur.load(ctx, c.target.id, now.Add(-c.cfg.readDelay-c.target.delivery.lookback(c.cfg)).UnixMilli(), c.logger); err != nil {
		return false, err
	}
	c.setCopiedUntil()
	if c.unwritable() {
		// The last save failed: nothing is read or sent until one works.
		if err := c.save(st.recorded); err != nil {
			return false, err
		}
	}

	// 1. Plan.
	end := now.Add(-c.cfg.readDelay).UnixMilli()
	plan, ok := st.plan(end, c.cfg.maxWindow.Milliseconds())
	if !ok {
		return true, nil
	}
	// 2. Read (or take the read made during the last pass), and read the
	// next window while this one is delivered.
	w := c.takeAhead(plan)
	if w == nil {
		if w, err = c.read(ctx, plan); err != nil {
			return false, err
		}
	}
	defer w.release()
	c.readNext(ctx, plan, w, end)
	defer func() { c.settleAhead(err == nil && !w.truncated) }()
	c.setPending(len(w.samples))
	defer c.setPending(0)
	// 3. Deliver (saving as it goes).
	if err := c.target.delivery.deliver(ctx, c, w); err != nil {
		if ctx.Err() != nil {
			// Stopping between batches: the recorded batches not sent yet
			// are cut again by the next run.
			st.stopped()
			_ = c.save(st.recorded)
		}
		return false, err
	}
	if w.truncated {
		// The rest of the window is read on the next pass, at once.
		c.succeeded()
		return false, nil
	}
	// 4. Save.
	st.windowDone(w.to)
	if err := c.save(nil); err != nil {
		return false, err
	}
	c.succeeded()
	return w.to == end, nil
}

// read reads the planned range, or less: a range that holds more than
// max_pending_samples is halved until it fits (copyState.tooFull), and a
// fixed one, or a single millisecond, is cut instead (the rest follows in
// the next pass).
func (c *copier) read(ctx context.Context, p readPlan) (*window, error) {
	st := &c.cur.state
	for {
		w, err := c.readOnce(ctx, p, st.acked)
		if errors.Is(err, errWindowFull) {
			p.to = st.tooFull(p.from, p.to)
			continue
		}
		if err == nil && !p.fixed {
			st.fitted(p.from, p.to, len(w.samples), c.cfg.maxPending, c.cfg.maxWindow.Milliseconds())
		}
		return w, err
	}
}

// readOnce reads p, leaving out what done covers.
func (c *copier) readOnce(ctx context.Context, p readPlan, done progress) (*window, error) {
	// Cancelling ends the streamed answers a full window leaves unread.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ss, err := c.cfg.src.read(ctx, c.rw.Policy, p.from, p.to)
	if err != nil {
		return nil, err
	}
	return collect(ss, c.rw.Policy, done, p.from, p.to, c.cfg.maxPending, p.truncates())
}

// write sends one batch to t. A refusal for good is counted and logged, and
// copying goes on; any other failure is returned, to be retried. resend
// says the batch may have been stored already (see batchDelivery.deliver).
func (c *copier) write(ctx context.Context, t batchTarget, b *batch, resend bool) error {
	err := t.send(ctx, b)
	var te *targetError
	var pw *partialWrite
	switch {
	case err == nil:
		c.countSent(len(b.samples))
		c.recovered()
		return nil
	case errors.As(err, &pw):
		c.countSent(pw.written)
		c.countDropped("partial_write", len(b.samples)-pw.written)
		c.logger.Warn("target wrote only part of a batch; the rest is dropped", zap.Int("written", pw.written), zap.Int("samples", len(b.samples)))
		return nil
	case errors.As(err, &te) && te.drop && resend:
		// Not a loss: a batch that may be stored already, refused whole
		// for holding samples the target has.
		c.countResentRefused(te.reason, len(b.samples))
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

// errStateUnwritable: the copy's progress could not be saved, so nothing
// more is sent (its status is state_unwritable) until a save works.
var errStateUnwritable = errors.New("cannot save the copy's progress; nothing is sent until it can be saved")

// save writes the copy state, with batches as the recorded batches. Its
// error wraps errStateUnwritable: the caller must send nothing more.
func (c *copier) save(batches []progress) error {
	c.setCopiedUntil()
	err := c.cur.save(c.target.id, batches)
	c.saved(err)
	if err != nil {
		return fmt.Errorf("%w: %w", errStateUnwritable, err)
	}
	return nil
}

// reportStatus writes the copier's state into the MetricAccess, for objects
// from the Kubernetes API: at once when the error changes, else at most
// every statusEvery.
func (c *copier) reportStatus(ctx context.Context) {
	if c.cfg.kube == nil || c.rw.Object.Source != tenancy.SourceKubernetes {
		return
	}
	s := c.Status()
	if s.LastError == c.reportedErr && s.State == c.reportedState && !c.reported.IsZero() && time.Since(c.reported) < statusEvery {
		return
	}
	if err := c.cfg.kube.write(ctx, c.rw.Namespace, c.rw.Object.Name, s); err != nil {
		if !c.reportFailed {
			c.logger.Warn("writing the MetricAccess's remote-write status", zap.Error(err))
		}
		c.reportFailed = true
		return
	}
	c.reported, c.reportedErr, c.reportedState, c.reportFailed = time.Now(), s.LastError, s.State, false
}
