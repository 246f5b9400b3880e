package remotewrite

import (
	"testing"

	"github.com/prometheus/prometheus/model/labels"
)

// Series whose hashes collide are kept apart: a lookup never returns
// another series' state, and a series that waited in conflicts is found
// there once the other has ended.
func TestLiveSeriesCollisions(t *testing.T) {
	l := newLiveSeries()
	l.hash = func(labels.Labels) uint64 { return 1 } // every series collides
	a := labels.FromStrings("__name__", "m", "pod", "a")
	b := labels.FromStrings("__name__", "m", "pod", "b")
	c := labels.FromStrings("__name__", "m", "pod", "c")
	sa := l.add(a)
	if st := l.get(b); st != nil {
		t.Fatalf("get(b) = %+v: a's state", st)
	}
	sb := l.add(b)
	if sb == sa || !labels.Equal(sb.lset, b) || l.get(b) != sb || l.get(a) != sa || l.len() != 2 {
		t.Fatalf("add(b) = %+v (a's %p); get(b) %p, get(a) %p, len %d", sb, sa, l.get(b), l.get(a), l.len())
	}
	l.remove(a)
	if l.get(a) != nil || l.get(b) != sb || l.len() != 1 {
		t.Fatalf("after remove(a): get(a) %v, get(b) %p (want %p), len %d", l.get(a), l.get(b), sb, l.len())
	}
	// b waits in conflicts with the slot free: add finds it, not a new one.
	if got := l.add(b); got != sb || l.len() != 1 {
		t.Errorf("add(b) after a ended = %p, want b's state %p; len %d, want 1", got, sb, l.len())
	}
	sc := l.add(c)
	if l.len() != 2 || l.get(c) != sc || l.get(b) != sb {
		t.Errorf("add(c): len %d, get(c) %p (want %p), get(b) %p (want %p)", l.len(), l.get(c), sc, l.get(b), sb)
	}
	l.remove(b)
	l.remove(c)
	if l.len() != 0 || len(l.all()) != 0 {
		t.Errorf("all removed: len %d, all %v", l.len(), l.all())
	}
}

func TestLiveSeries(t *testing.T) {
	l := newLiveSeries()
	a := labels.FromStrings("__name__", "m", "pod", "a")
	if l.get(a) != nil {
		t.Fatal("empty: get found a state")
	}
	st := l.add(a)
	if l.add(a) != st || l.get(a) != st || l.len() != 1 {
		t.Fatalf("add twice: %p %p, len %d", l.add(a), st, l.len())
	}
	l.remove(a)
	if l.get(a) != nil || l.len() != 0 {
		t.Errorf("after remove: %v, len %d", l.get(a), l.len())
	}
}
