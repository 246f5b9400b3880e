package remotewrite

import (
	"context"
	"errors"
	"slices"
	"time"

	"github.com/prometheus/prometheus/model/labels"
)

// pushgatewayDelivery keeps the current value of every live series and
// replaces the Pushgateway's group with them once per window. The
// Pushgateway holds current values only, so nothing is resent and no
// progress is saved: a restart starts staleAfter back, to know every live
// series again.
type pushgatewayDelivery struct {
	target snapshotTarget
	group  labelRule // the grouping labels, which the Pushgateway overwrites
}

// lookback: staleAfter, to know every live series.
func (pushgatewayDelivery) lookback(*settings) time.Duration { return staleAfter }

// keepsProgress: no; a Pushgateway holds current values only.
func (pushgatewayDelivery) keepsProgress() bool { return false }

// deliver updates the current value of every series from w and, once the
// window is whole, pushes all live series, replacing the group.
func (d pushgatewayDelivery) deliver(_ context.Context, c *copier, w *window) error {
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
			c.cur.state.gathered(w.position(c.cur.state.acked.T, n-1))
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
		series[i] = d.group.apply(b, c.rule.apply(b, st.lset))
		values[i] = st.lastV
	}
	if err := d.target.push(c.writes, series, values); err != nil {
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
