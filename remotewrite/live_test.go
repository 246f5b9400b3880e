package remotewrite

import (
	"testing"

	"github.com/prometheus/prometheus/model/labels"
)

// Series whose hashes collide are kept apart: a lookup never returns
// another series' state.
func TestLiveSeriesCollisions(t *testing.T) {
	l := newLiveSeries()
	a := labels.FromStrings("__name__", "m", "pod", "a")
	b := labels.FromStrings("__name__", "m", "pod", "b")
	// A collision, made by hand: b's hash holds a's state.
	sa := l.add(a)
	delete(l.byHash, a.Hash())
	l.byHash[b.Hash()] = sa
	if st := l.get(b); st != nil {
		t.Fatalf("get(b) = %+v: a's state under b's hash", st)
	}
	sb := l.add(b)
	if sb == sa || !labels.Equal(sb.lset, b) {
		t.Fatalf("add(b) = %+v, want a new state of b", sb)
	}
	if l.get(b) != sb || l.len() != 2 {
		t.Fatalf("get(b) = %p, want %p; len %d, want 2", l.get(b), sb, l.len())
	}
	l.remove(b)
	if l.get(b) != nil || l.len() != 1 {
		t.Errorf("after remove(b): get(b) = %v, len %d", l.get(b), l.len())
	}
	if len(l.all()) != 1 || l.all()[0] != sa {
		t.Errorf("all() = %v, want a's state only", l.all())
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
