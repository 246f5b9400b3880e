package remotewrite

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/prometheus/model/labels"
)

// sharedProgress is one copy's progress as a ConfigMap holds it for every
// replica: a load claims it (a new version), and a save succeeds only at
// the version its replica last saw, as kubeStore's updates at a
// resourceVersion do.
type sharedProgress struct {
	s       savedState
	version int
}

// replicaStore is one replica's view of a sharedProgress.
type replicaStore struct {
	sh   *sharedProgress
	seen int
}

func (r *replicaStore) load(context.Context) (savedState, bool, error) {
	r.sh.version++
	r.seen = r.sh.version
	return r.sh.s, true, nil
}

func (r *replicaStore) save(s savedState) error {
	if r.seen != r.sh.version {
		return fmt.Errorf("%w: %w", errStoreUnavailable, errFenced)
	}
	r.sh.version++
	r.seen = r.sh.version
	r.sh.s = s
	return nil
}

// Replicas take a copy over from each other at random moments, with
// answers lost after the receiver stored a batch, and a deposed replica
// that has not noticed runs one more pass after the takeover. Every sample
// must arrive exactly once, and the deposed pass must store nothing but
// the batches the progress names as recorded (which the new leader
// resends alone anyway). A deposed copier whose term has ended (its
// context done) must not claim the progress back, even with every slot
// it waits for free.
func TestCopierHandOverExactlyOnce(t *testing.T) {
	base := time.Now().Add(-time.Hour).UnixMilli()
	ended, cancel := context.WithCancel(context.Background())
	cancel()
	for seed := range uint64(25) {
		r := rand.New(rand.NewPCG(seed, 15))
		var d testData
		bySeries := map[string]labels.Labels{}
		for i := range 1 + r.IntN(5) {
			d.lsets = append(d.lsets, testPodSeries(i))
			bySeries[testPodSeries(i).String()] = testPodSeries(i)
			var ts []int64
			for t := range int64(60) {
				if r.IntN(2) == 0 {
					ts = append(ts, t)
				}
			}
			d.ts = append(d.ts, ts)
		}
		src := testSourceServer(t, d.series(base))
		rcv := &testStrictReceiver{stored: map[string][]int64{}}
		rcv.failAfter = func() error {
			if r.IntN(4) == 0 {
				return &targetError{reason: "network", err: errors.New("timeout after the commit")}
			}
			return nil
		}
		sh := &sharedProgress{s: savedState{Target: "remote_write test", Progress: progress{T: base - 1}}}
		batchSize, maxPending := 1+r.IntN(8), 1+r.IntN(30)
		maxWindow := time.Duration(1+r.IntN(40)) * time.Millisecond
		replica := func() *copier {
			c := testCopier(t, src, rcv, t.TempDir(), base, batchSize, maxPending, maxWindow)
			c.cur.store = &replicaStore{sh: sh}
			return c
		}
		refused := testutil.ToFloat64(metrics.dropped.WithLabelValues("copier-window-test", "http_400"))
		leader := replica()
		done := false
		for range 10000 {
			if r.IntN(3) == 0 { // a takeover: the new leader's first pass claims the progress
				deposed := leader
				leader = replica()
				if _, err := leader.pass(context.Background()); err != nil && errors.Is(err, errFenced) {
					t.Fatalf("seed %d: the new leader is fenced: %v", seed, err)
				}
				if !deposed.cur.state.loaded {
					continue // it never ran: nothing to be deposed from
				}
				before := countStored(rcv)
				stored := sh.s
				// A paused deposed replica may still send batches it recorded
				// before the takeover, up to the next save, which the fence
				// refuses: the same boundaries the new leader resends, so the
				// receiver refuses one of the two as held already. The deposed
				// one counts its refusals as dropped (it cannot know); only the
				// leader's count must stay 0.
				droppedBefore := testutil.ToFloat64(metrics.dropped.WithLabelValues("copier-window-test", "http_400"))
				_, _ = deposed.pass(context.Background())
				refused += testutil.ToFloat64(metrics.dropped.WithLabelValues("copier-window-test", "http_400")) - droppedBefore
				for k, ts := range rcv.stored {
					for _, ts := range ts[before[k]:] {
						if !stored.Progress.covers(ts, bySeries[k]) && (len(stored.Batches) == 0 || !stored.Batches[len(stored.Batches)-1].covers(ts, bySeries[k])) {
							t.Fatalf("seed %d: the deposed replica stored %s at %d, past the progress it lost (%+v, recorded batches %+v)", seed, k, ts-base, stored.Progress, stored.Batches)
						}
					}
				}
				if !deposed.cur.state.loaded {
					// Fenced, and then its term is over: a pass may still
					// start (run's select), and must take nothing back.
					version := sh.version
					for range 20 {
						_, _ = deposed.pass(ended)
					}
					if sh.version != version {
						t.Fatalf("seed %d: a copier whose term ended claimed the progress back from the new leader", seed)
					}
				}
				continue
			}
			caughtUp, err := leader.pass(context.Background())
			if st := leader.cur.state; err == nil && (caughtUp || st.acked.T >= base+60 && !st.acked.partial() && st.unsure == 0) {
				done = true
				break
			}
		}
		if !done {
			t.Fatalf("seed %d: not caught up after 10000 passes", seed)
		}
		if n := testutil.ToFloat64(metrics.dropped.WithLabelValues("copier-window-test", "http_400")) - refused; n != 0 {
			t.Errorf("seed %d: %v samples the leader sent refused in batches not marked as resent", seed, n)
		}
		testCheckStored(t, rcv, d, base, 0)
		if t.Failed() {
			t.Fatalf("seed %d: batch_size %d, max_pending_samples %d, max_window %s", seed, batchSize, maxPending, maxWindow)
		}
	}
}

func countStored(rcv *testStrictReceiver) map[string]int {
	n := map[string]int{}
	for k, ts := range rcv.stored {
		n[k] = len(ts)
	}
	return n
}
