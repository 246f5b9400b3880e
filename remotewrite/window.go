package remotewrite

import (
	"errors"
	"fmt"
	"sync"

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
// the window is sent (of a truncated one, only series before it, each of
// which the policy allows).
var errOutsidePolicy = errors.New("the source returned a series outside the policy")

// sample is one raw sample of a window: a float, or a native histogram.
// It holds no pointer, so that the garbage collector does not scan a
// window's hundreds of thousands of them.
type sample struct {
	t      int64
	v      float64
	series int32 // index into window.series
	hist   int32 // 0: a float; else 1 + the index into window.hists
}

// hist is a native histogram sample's value: one of the two is set.
type hist struct {
	h  *histogram.Histogram
	fh *histogram.FloatHistogram
}

// window is the samples a copier reads in one pass, not yet acknowledged,
// series by series in Prometheus's label-set order, each series' in time
// order: the order progress compares.
type window struct {
	from, to int64 // the read's inclusive time range, in milliseconds
	series   []labels.Labels
	samples  []sample
	hists    []hist
	// truncated: the window holds only the first samples of [from, to] in
	// that order, as many as a copier may keep; the rest is read again.
	truncated bool
}

// position is the progress just past sample i of w, whose window lies
// after t: where acked moves once the target has every sample up to i.
func (w *window) position(t int64, i int) progress {
	s := w.samples[i]
	return progress{T: t, Window: w.to, Series: w.series[s.series], SeriesT: s.t}
}

// sampleBuffers keeps the sample slices of finished windows: a window of
// max_pending_samples grown by appends costs more than its copy. A cache,
// not state: what it holds is never read.
var sampleBuffers bufferPool

type bufferPool struct{ p sync.Pool }

func (b *bufferPool) get() []sample {
	if s, ok := b.p.Get().(*[]sample); ok {
		return (*s)[:0]
	}
	return nil
}

func (b *bufferPool) put(s []sample) {
	s = s[:0]
	b.p.Put(&s)
}

// release gives the window's samples back; w is not used after it.
func (w *window) release() {
	if w != nil && w.samples != nil {
		sampleBuffers.put(w.samples)
		w.samples, w.hists = nil, nil
	}
}

// collect reads ss, a series set in label-set order, into a window, leaving
// out what done covers. Every series must match p: the reads select by p's
// branches, and a series outside it is an error, never dropped silently. A
// window of more than maxSamples samples is errWindowFull, or, with
// truncate, cut after maxSamples.
func collect(ss storage.SeriesSet, p *rewrite.Policy, done progress, from, to int64, maxSamples int, truncate bool) (_ *window, err error) {
	w := &window{from: from, to: to, samples: sampleBuffers.get()}
	defer func() {
		if err != nil {
			w.release() // a window too full is read again: keep its buffer
		}
	}()
	var it chunkenc.Iterator
	var prev labels.Labels
	// In a partly sent window, the series before done.Series are sent whole.
	skipBefore := labels.EmptyLabels()
	if done.partial() && from > done.T && to <= done.Window {
		skipBefore = done.Series
	}
	for ss.Next() {
		s := ss.At()
		lset := s.Labels()
		if !p.Matches(lset) {
			return nil, fmt.Errorf("%w: %s", errOutsidePolicy, lset)
		}
		// (A series the streamed answer cut into parts comes whole:
		// joinedParts.)
		if !prev.IsEmpty() && labels.Compare(prev, lset) >= 0 {
			return nil, fmt.Errorf("the source returned series out of order: %s after %s", lset, prev)
		}
		prev = lset
		if !skipBefore.IsEmpty() && labels.Compare(lset, skipBefore) < 0 {
			continue
		}
		idx := len(w.series)
		kept := false
		it = s.Iterator(it)
		for vt := it.Next(); vt != chunkenc.ValNone; vt = it.Next() {
			smp := sample{series: int32(idx)}
			var hv hist
			switch vt {
			case chunkenc.ValFloat:
				smp.t, smp.v = it.At()
			case chunkenc.ValHistogram:
				smp.t, hv.h = it.AtHistogram(nil)
			case chunkenc.ValFloatHistogram:
				smp.t, hv.fh = it.AtFloatHistogram(nil)
			default:
				return nil, fmt.Errorf("series %s: unknown sample type %v", lset, vt)
			}
			if smp.t < from || smp.t > to || done.covers(smp.t, lset) {
				continue
			}
			if len(w.samples) >= maxSamples {
				if !truncate {
					return nil, errWindowFull
				}
				w.truncated = true
				break
			}
			if hv.h != nil || hv.fh != nil {
				w.hists = append(w.hists, hv)
				smp.hist = int32(len(w.hists))
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
		if w.truncated {
			// A read that tells a series' stored labels only once it has
			// read them all (strippedRead) is read to its end for errors.
			if r, ok := ss.(interface{ drain() error }); ok {
				if err := r.drain(); err != nil {
					return nil, err
				}
			}
			return w, nil
		}
	}
	if err := ss.Err(); err != nil {
		return nil, err
	}
	return w, nil
}
