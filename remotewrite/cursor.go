package remotewrite

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"
)

// cursors holds one cursor per (MetricAccess, target). A config reload that
// changes a copier's settings (its interval, say) starts the new copier
// before the old one stops; both share the cursor, so their passes take
// turns and neither sends what the other has sent.
var cursors = caddy.NewUsagePool()

// cursor is where copying of one MetricAccess to one target stands: what
// the target has acknowledged, and the series it holds that have not ended.
// A copier holds it (lock) for the whole of a pass.
type cursor struct {
	turn chan struct{} // a one-slot lock a stopping copier can stop waiting for
	done progress
	// unsure is where a batch ends that was in flight when the previous run
	// stopped: the target may or may not hold it.
	unsure *progress
	live   *liveSeries

	stateMu sync.Mutex // guards state, which a reload may move
	state   stateFile
	// loaded: done was set, from the state file or initial_lookback.
	loaded bool

	// Samples acknowledged, failed (to be retried) and given up, since the
	// process started; shared, so a reload that replaces the copier keeps them.
	sent, failed, dropped atomic.Uint64
}

func cursorKey(object, targetID string) string { return object + "\x00" + targetID }

// acquireCursor returns the shared cursor of object and target; release it
// with releaseCursor.
func acquireCursor(object, targetID string, state stateFile) (*cursor, error) {
	v, loaded, err := cursors.LoadOrNew(cursorKey(object, targetID), func() (caddy.Destructor, error) {
		return &cursor{turn: make(chan struct{}, 1), live: newLiveSeries(), state: state}, nil
	})
	if err != nil {
		return nil, err
	}
	c := v.(*cursor)
	if loaded {
		// The newest config says where progress is kept (state_dir may
		// have moved): the next save goes there.
		c.stateMu.Lock()
		c.state = state
		c.stateMu.Unlock()
	}
	return c, nil
}

func releaseCursor(object, targetID string) {
	_, _ = cursors.Delete(cursorKey(object, targetID))
}

// lock waits for the cursor's turn; unlock gives it back.
func (c *cursor) lock(ctx context.Context) error {
	select {
	case c.turn <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (c *cursor) unlock() { <-c.turn }

// Destruct is called when the last copier using the cursor is gone. The
// progress is on disk already.
func (*cursor) Destruct() error { return nil }

// load sets the starting point once: the saved progress when it belongs to
// the same target, else `start`. The caller holds the lock.
func (c *cursor) load(targetID string, start int64, logger *zap.Logger) {
	if c.loaded {
		return
	}
	c.loaded = true
	c.done = progress{T: start}
	c.stateMu.Lock()
	state := c.state
	c.stateMu.Unlock()
	saved, ok, err := state.load()
	switch {
	case err != nil:
		logger.Warn("remote write state unreadable; starting from initial_lookback", zap.Error(err))
	case ok && saved.Target == targetID:
		c.done, c.unsure = saved.Progress, saved.InFlight
		logger.Info("remote write resumes", zap.Time("copied_until", time.UnixMilli(saved.Progress.T)), zap.Bool("resending_unacknowledged_batch", saved.InFlight != nil))
	case ok:
		logger.Info("remote write target changed; starting from initial_lookback", zap.String("previous_target", saved.Target))
	}
}

// save writes the progress. It runs after every acknowledged batch: a
// receiver refuses a batch that holds a sample older than one it has
// (out of order), so progress that lagged behind what was acknowledged would
// make the next batch, new samples included, fail for good after a restart.
func (c *cursor) save(targetID string, inFlight *progress) error {
	c.stateMu.Lock()
	state := c.state
	c.stateMu.Unlock()
	return state.save(savedState{Target: targetID, Progress: c.done, InFlight: inFlight})
}
