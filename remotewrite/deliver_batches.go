package remotewrite

import (
	"context"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/value"
)

// batchDelivery sends a window in batches to a target that stores samples
// with their timestamps (remote write, and a tenant's Prometheus), each
// sample once: see doc.go.
type batchDelivery struct{ target batchTarget }

// lookback: a copy starts initial_lookback back.
func (batchDelivery) lookback(set *settings) time.Duration { return set.initialLookback }

// keepsProgress: the progress is saved, to resume after a restart.
func (batchDelivery) keepsProgress() bool { return true }

// batchesPerSave is how many batches one save records before the first
// of them is sent. Each is still sent alone at its recorded boundaries, so
// more per save costs nothing in exactness: only, after a crash, up to this
// many batches are resent (and refused) instead of one. The save syncs a
// file and its directory; see BenchmarkStateFileSave for its cost.
const batchesPerSave = 16

// deliver sends w in batches, moving acked with each one the target
// acknowledges (or refuses for good), then, if w is whole, ends the series
// that stopped without a staleness marker. A window goes series by series,
// so a series' labels are sent once per batch, not once per sample.
//
// No batch is sent before the state file holds its end: one save records
// the ends of the next batchesPerSave batches (with acked, the previous
// ones' acknowledgements) before the first of them goes out. If the
// process dies, the next run resends exactly those batches, each on its
// own: a receiver that had stored one refuses it as out of order, and
// mixing new samples into it would lose them with it. If the save fails,
// nothing more is sent (errStateUnwritable).
func (d batchDelivery) deliver(ctx context.Context, c *copier, w *window) error {
	st := &c.cur.state
	b := labels.NewBuilder(labels.EmptyLabels())
	out := make([]labels.Labels, len(w.series))
	for i, s := range w.series {
		out[i] = c.rule.apply(b, s)
	}
	for i := 0; i < len(w.samples); {
		if err := ctx.Err(); err != nil {
			return err // stopping: between batches, nothing is half sent
		}
		bp := st.planBatch(w, i, c.cfg.batchSize)
		if !bp.recorded {
			ends := st.toRecord(w, i, c.cfg.batchSize, batchesPerSave)
			if err := c.save(ends); err != nil {
				return err
			}
			st.recordBatches(ends)
			bp = st.batchAt(w, i, c.cfg.batchSize)
			if !bp.recorded {
				return fmt.Errorf("internal error: the batch at sample %d would go out unrecorded; not sent", i)
			}
		}
		chunk := w.samples[i : i+bp.n]
		if err := c.write(c.writes, d.target, &batch{series: out, samples: chunk, hists: w.hists}, bp.resend); err != nil {
			// A failed request may still have been stored (a timeout after
			// the receiver committed): the next try sends this batch alone.
			st.lost(bp)
			return err
		}
		st.acknowledged(bp)
		c.trackLast(w, chunk)
		i += bp.n
		c.setPending(len(w.samples) - i)
	}
	if w.truncated {
		return nil
	}
	return d.endVanished(c, w.to)
}

// endVanished sends a staleness marker at `at` for every series that had no
// sample for staleAfter and no marker of its own, so that the target stops
// showing it at once, as the source does.
func (d batchDelivery) endVanished(c *copier, at int64) error {
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
	if err := c.write(c.writes, d.target, m, false); err != nil {
		return err
	}
	for _, st := range ended {
		c.cur.live.remove(st.lset)
	}
	return nil
}
