package remotewrite

import (
	"github.com/prometheus/prometheus/model/labels"
)

// seriesState is what the copier knows of a series it has copied.
type seriesState struct {
	lset  labels.Labels // as read from the source
	lastT int64
	lastV float64
}

// liveSeries are the series a target holds that have not ended, by the hash
// of their labels, so that a lookup builds no key; the rare series whose
// hash another one has are kept by their labels' text in conflicts.
type liveSeries struct {
	byHash    map[uint64]*seriesState
	conflicts map[string]*seriesState
	hash      func(labels.Labels) uint64 // Labels.Hash; tests make collisions
}

func newLiveSeries() *liveSeries {
	return &liveSeries{byHash: map[uint64]*seriesState{}, conflicts: map[string]*seriesState{}, hash: labels.Labels.Hash}
}

func (l *liveSeries) get(lset labels.Labels) *seriesState {
	if st := l.byHash[l.hash(lset)]; st != nil && labels.Equal(st.lset, lset) {
		return st
	}
	if len(l.conflicts) == 0 {
		return nil
	}
	return l.conflicts[lset.String()]
}

// add returns the state of lset, made if there is none.
func (l *liveSeries) add(lset labels.Labels) *seriesState {
	h := l.hash(lset)
	st := l.byHash[h]
	switch {
	case st != nil && labels.Equal(st.lset, lset):
		return st
	case st == nil && len(l.conflicts) == 0:
		st = &seriesState{lset: lset}
		l.byHash[h] = st
		return st
	}
	// The series may be in conflicts from when its hash's slot was taken.
	if st := l.conflicts[lset.String()]; st != nil {
		return st
	}
	if st == nil {
		st = &seriesState{lset: lset}
		l.byHash[h] = st
		return st
	}
	st = &seriesState{lset: lset}
	l.conflicts[lset.String()] = st
	return st
}

func (l *liveSeries) remove(lset labels.Labels) {
	h := l.hash(lset)
	if st := l.byHash[h]; st != nil && labels.Equal(st.lset, lset) {
		delete(l.byHash, h)
		return
	}
	delete(l.conflicts, lset.String())
}

func (l *liveSeries) len() int { return len(l.byHash) + len(l.conflicts) }

// all returns every state, in no order.
func (l *liveSeries) all() []*seriesState {
	out := make([]*seriesState, 0, l.len())
	for _, st := range l.byHash {
		out = append(out, st)
	}
	for _, st := range l.conflicts {
		out = append(out, st)
	}
	return out
}
