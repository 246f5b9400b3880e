package remotewrite

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"
)

// cursor is one copy's shared part (a MetricAccess to one target): its
// copyState, the series the target holds that have not ended, where the
// state is saved, and counters. A config reload that changes a copier's
// settings (its interval, say) starts the new copier before the old one
// stops; both hold the cursor (process.cursors), so their passes take
// turns and neither sends what the other has sent. A copier holds the
// cursor's turn (lock) for the whole of a pass; the pass alone touches
// state and live.
type cursor struct {
	turn  chan struct{} // a one-slot lock a stopping copier can stop waiting for
	state copyState
	live  *liveSeries

	storeMu sync.Mutex // guards store, which a reload may move
	store   progressStore

	// Samples acknowledged, failed (to be retried), given up, and resent
	// and refused (most likely held already), since the process started;
	// shared, so a reload that replaces the copier keeps them.
	sent, failed, dropped, resentRefused atomic.Uint64
}

func cursorKey(object, targetID string) string { return object + "\x00" + targetID }

// acquireCursor returns the shared cursor of object and target; release it
// with releaseCursor.
func acquireCursor(object, targetID string, store progressStore) (*cursor, error) {
	v, loaded, err := process.cursors.LoadOrNew(cursorKey(object, targetID), func() (caddy.Destructor, error) {
		return &cursor{turn: make(chan struct{}, 1), live: newLiveSeries(), store: store}, nil
	})
	if err != nil {
		return nil, err
	}
	c := v.(*cursor)
	if loaded {
		// The newest config says where progress is kept (state_dir may
		// have moved): the next save goes there.
		c.storeMu.Lock()
		if old, ok := c.store.(*kubeStore); ok {
			if nw, ok := store.(*kubeStore); ok && nw.name == old.name {
				// Same term, same ConfigMap: the claim is kept, else the
				// loaded state's next save would fail for no fault.
				old.mu.Lock()
				nw.cm = old.cm
				old.mu.Unlock()
			}
		}
		c.store = store
		c.storeMu.Unlock()
	}
	return c, nil
}

func releaseCursor(object, targetID string) {
	_, _ = process.cursors.Delete(cursorKey(object, targetID))
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

func (c *cursor) progressStore() progressStore {
	c.storeMu.Lock()
	defer c.storeMu.Unlock()
	return c.store
}

// load loads the copy state once, for a copier running in ctx: the saved progress when it belongs to the
// same target, else `start`. The caller holds the lock. A store that
// cannot answer for now (errStoreUnavailable) leaves the state unloaded:
// the pass fails and the next one asks again.
func (c *cursor) load(ctx context.Context, targetID string, start int64, logger *zap.Logger) error {
	if c.state.loaded {
		return nil
	}
	saved, ok, err := c.progressStore().load(ctx)
	switch {
	case errors.Is(err, errStoreUnavailable):
		return err
	case err != nil:
		logger.Warn("remote write state unreadable; starting from initial_lookback", zap.Error(err))
	case ok && saved.Target == targetID:
		logger.Info("remote write resumes", zap.Time("copied_until", time.UnixMilli(saved.Progress.T)), zap.Int("recorded_batches_to_resend", len(saved.Batches)))
	case ok:
		logger.Info("remote write target changed; starting from initial_lookback", zap.String("previous_target", saved.Target))
	}
	c.state.load(saved, err == nil && ok && saved.Target == targetID, start)
	return nil
}

// save writes the copy state, with batches as the recorded batches (see
// copyState.recorded): before a batch is sent, its end must be on disk,
// else a restart would cut the samples after acked by its own batch_size,
// mixing samples the receiver holds with new ones, which it refuses whole.
func (c *cursor) save(targetID string, batches []progress) error {
	s := c.state.saved(targetID)
	s.Batches = batches
	err := c.progressStore().save(s)
	if errors.Is(err, errStoreUnavailable) {
		c.state.unload() // what is stored is not known: load it again
	}
	return err
}
