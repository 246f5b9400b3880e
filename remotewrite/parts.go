package remotewrite

import (
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
)

// joinedParts is a streamed remote-read answer with each series whole. The
// handler cuts a series whose chunks exceed a frame (1 MiB by default) into
// consecutive parts with the same labels, and the client returns each part
// as a series; joined here, before the branches are merged (which would
// otherwise merge only one part of a series with another branch's) and
// before external labels are stripped (which would take the second part
// for a second series).
//
// From a source with external labels, two stored series can come back
// with the same labels too (one with a label equal to an external one, one
// without it), and in turn: join says whether series returned with these
// labels may be parts (nil: always). When not, the parts come as they are,
// for stripSet to refuse as ambiguous.
type joinedParts struct {
	storage.SeriesSet
	join  func(labels.Labels) bool
	next  storage.Series // read ahead: the first part of the next series
	cur   storage.Series
	ended bool
}

func (j *joinedParts) Next() bool {
	if j.next == nil && !j.ended {
		j.advance()
	}
	if j.next == nil {
		return false
	}
	first := j.next
	j.next = nil
	if j.join != nil && !j.join(first.Labels()) {
		j.cur = first
		return true
	}
	// Most series come in one frame: no slice of parts for them.
	if !j.advance() || !labels.Equal(j.next.Labels(), first.Labels()) {
		j.cur = first
		return true
	}
	parts := []storage.Series{first, j.next}
	j.next = nil
	for j.advance() && labels.Equal(j.next.Labels(), first.Labels()) {
		parts = append(parts, j.next)
		j.next = nil
	}
	// The parts are in time order and do not overlap: the chained merge
	// concatenates them.
	j.cur = storage.ChainedSeriesMerge(parts...)
	return true
}

// advance reads the next series into j.next; false at the end.
func (j *joinedParts) advance() bool {
	if j.ended {
		return false
	}
	if !j.SeriesSet.Next() {
		j.ended = true
		return false
	}
	j.next = j.SeriesSet.At()
	return true
}

func (j *joinedParts) At() storage.Series { return j.cur }
