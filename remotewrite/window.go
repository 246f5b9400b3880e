package remotewrite

import (
	"errors"
	"fmt"
	"slices"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"

	"github.com/prom-tenant/caddy-prom-tenant/rewrite"
)

// errWindowFull says a window holds more samples than a copier may keep in
// memory: the copier reads a shorter one.
var errWindowFull = errors.New("window holds more samples than max_pending_samples")

// errOutsidePolicy says the source returned a series the policy does not
// allow. It means the source did not apply the read's matchers; nothing of
// the window is sent.
var errOutsidePolicy = errors.New("the source returned a series outside the policy")

// sample is one raw sample of a window: a float, or a native histogram.
type sample struct {
	t      int64
	v      float64
	h      *histogram.Histogram
	fh     *histogram.FloatHistogram
	series int // index into window.series
}

// window is the samples a copier reads in one pass, not yet acknowledged,
// sorted by (timestamp, series). Series are in Prometheus's label-set order,
// so the order of their indexes is the order progress compares.
type window struct {
	from, to int64 // the read's inclusive time range, in milliseconds
	series   []labels.Labels
	samples  []sample
}

// collect reads ss, a series set in label-set order, into a window, leaving
// out what done covers. Every series must match p: the reads select by p's
// branches, and a series outside it is an error, never dropped silently. A
// window of more than maxSamples samples is errWindowFull.
func collect(ss storage.SeriesSet, p *rewrite.Policy, done progress, from, to int64, maxSamples int) (*window, error) {
	w := &window{from: from, to: to}
	var it chunkenc.Iterator
	var prev labels.Labels
	for ss.Next() {
		s := ss.At()
		lset := s.Labels()
		if !p.Matches(lset) {
			return nil, fmt.Errorf("%w: %s", errOutsidePolicy, lset)
		}
		if !prev.IsEmpty() && labels.Compare(prev, lset) >= 0 {
			return nil, fmt.Errorf("the source returned series out of order: %s after %s", lset, prev)
		}
		prev = lset
		idx := len(w.series)
		kept := false
		it = s.Iterator(it)
		for vt := it.Next(); vt != chunkenc.ValNone; vt = it.Next() {
			smp := sample{series: idx}
			switch vt {
			case chunkenc.ValFloat:
				smp.t, smp.v = it.At()
			case chunkenc.ValHistogram:
				smp.t, smp.h = it.AtHistogram(nil)
			case chunkenc.ValFloatHistogram:
				smp.t, smp.fh = it.AtFloatHistogram(nil)
			default:
				return nil, fmt.Errorf("series %s: unknown sample type %v", lset, vt)
			}
			if smp.t < from || smp.t > to || done.covers(smp.t, lset) {
				continue
			}
			if len(w.samples) >= maxSamples {
				return nil, errWindowFull
			}
			w.samples = append(w.samples, smp)
			kept = true
		}
		if err := it.Err(); err != nil {
			return nil, fmt.Errorf("series %s: %w", lset, err)
		}
		if kept {
			w.series = append(w.series, lset)
		}
	}
	if err := ss.Err(); err != nil {
		return nil, err
	}
	// Each series' samples are in time order already; a stable sort by time
	// keeps series order within a timestamp.
	slices.SortStableFunc(w.samples, func(a, b sample) int {
		switch {
		case a.t < b.t:
			return -1
		case a.t > b.t:
			return 1
		}
		return 0
	})
	return w, nil
}
