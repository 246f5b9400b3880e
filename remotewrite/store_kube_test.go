package remotewrite

import (
	"errors"
	"testing"

	"github.com/prometheus/prometheus/model/labels"
	"go.uber.org/zap"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/prom-tenant/caddy-prom-tenant/internal/testenv"
)

// A replica that takes a copy over reads exactly what the previous one
// saved, and marks the ConfigMap as its own.
func TestKubeStoreHandsOver(t *testing.T) {
	testKubeStoreHandsOver(t, fake.NewClientset())
}

func testKubeStoreHandsOver(t *testing.T, cs kubernetes.Interface) {
	a := &kubeStores{client: cs.CoreV1(), namespace: "ops", prefix: "copy", identity: "replica-a"}
	b := &kubeStores{client: cs.CoreV1(), namespace: "ops", prefix: "copy", identity: "replica-b"}
	sa := a.store("team-a/app", "remote_write http://r/api/v1/write")
	if _, ok, err := sa.load(); ok || err != nil {
		t.Fatalf("first load: ok %v, %v", ok, err)
	}
	want := savedState{Target: "remote_write http://r/api/v1/write", Progress: progress{T: 1000, Window: 2000, Series: labels.FromStrings("a", "b"), SeriesT: 1500},
		InFlight: &progress{T: 1000, Window: 2000, Series: labels.FromStrings("a", "c"), SeriesT: 1200}}
	if err := sa.save(want); err != nil {
		t.Fatal(err)
	}
	sb := b.store("team-a/app", "remote_write http://r/api/v1/write")
	got, ok, err := sb.load()
	if err != nil || !ok {
		t.Fatalf("load by the next replica: ok %v, %v", ok, err)
	}
	want.Version = stateVersion
	if got.Target != want.Target || !labels.Equal(got.Progress.Series, want.Progress.Series) || got.Progress.SeriesT != 1500 ||
		got.InFlight == nil || !labels.Equal(got.InFlight.Series, want.InFlight.Series) || got.InFlight.SeriesT != 1200 {
		t.Errorf("loaded %+v, saved %+v", got, want)
	}
	cm, err := cs.CoreV1().ConfigMaps("ops").Get(t.Context(), sb.name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if cm.Annotations[holderKey] != "replica-b" || cm.Annotations[objectKey] != "team-a/app" || cm.Labels[managedByLabel] != managedByValue {
		t.Errorf("ConfigMap metadata %v %v", cm.Annotations, cm.Labels)
	}
	if other := a.store("team-a/app", "remote_write http://elsewhere/api/v1/write"); other.name == sb.name {
		t.Errorf("two targets share ConfigMap %s", sb.name)
	}
}

// A deposed replica's late save fails once the next replica has claimed
// the progress, and says so: this is what stops it from sending. On the
// real API server, whose resourceVersion checks are the fence.
func TestKubeStoreFencing(t *testing.T) {
	k := testenv.StartKubeAPIServer(t)
	cs, err := kubernetes.NewForConfig(k.RESTConfig())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cs.CoreV1().Namespaces().Create(t.Context(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "ops"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Run("hands over", func(t *testing.T) { testKubeStoreHandsOver(t, cs) })

	stores := func(id string) *kubeStore {
		return (&kubeStores{client: cs.CoreV1(), namespace: "ops", prefix: "fence", identity: id}).store("team-a/app", "t")
	}
	a, b := stores("replica-a"), stores("replica-b")
	if _, _, err := a.load(); err != nil {
		t.Fatal(err)
	}
	if err := a.save(savedState{Target: "t", Progress: progress{T: 1}}); err != nil {
		t.Fatal(err)
	}
	if s, ok, err := b.load(); err != nil || !ok || s.Progress.T != 1 {
		t.Fatalf("b's load: %+v %v %v", s, ok, err)
	}
	err = a.save(savedState{Target: "t", Progress: progress{T: 2}})
	if !errors.Is(err, errFenced) || !errors.Is(err, errStoreUnavailable) {
		t.Fatalf("a's save after b claimed the copy: %v, want it fenced", err)
	}
	if err := b.save(savedState{Target: "t", Progress: progress{T: 3}}); err != nil {
		t.Fatalf("b's save: %v", err)
	}
	if err := a.save(savedState{Target: "t", Progress: progress{T: 4}}); err == nil {
		t.Fatal("a saved again without loading")
	}
	if s, _, err := b.load(); err != nil || s.Progress.T != 3 {
		t.Errorf("stored %+v (%v), want b's T=3: a's late writes must not land", s, err)
	}
}

// fakeStore fails its saves as told.
type fakeStore struct {
	saved   savedState
	ok      bool
	saveErr error
	loads   int
}

func (f *fakeStore) load() (savedState, bool, error) { f.loads++; return f.saved, f.ok, nil }
func (f *fakeStore) save(s savedState) error {
	if f.saveErr != nil {
		return f.saveErr
	}
	f.saved, f.ok = s, true
	return nil
}

// After a save the store may or may not have taken, the cursor loads again
// before it goes on; after a save that failed for good (a file), it keeps
// what it has.
func TestCursorLoadsAgainAfterUnsureSave(t *testing.T) {
	for _, tc := range []struct {
		err   error
		loads int
	}{{nil, 1}, {errFenced, 1}, {errors.Join(errStoreUnavailable, errFenced), 2}} {
		f := &fakeStore{saved: savedState{Target: "t", Progress: progress{T: 10}}, ok: true}
		c := &cursor{turn: make(chan struct{}, 1), live: newLiveSeries(), store: f}
		if err := c.load("t", 0, zap.NewNop()); err != nil || c.state.acked.T != 10 {
			t.Fatalf("load: %v, acked %+v", err, c.state.acked)
		}
		c.state.windowDone(20)
		f.saveErr = tc.err
		if err := c.save("t", nil); !errors.Is(err, tc.err) {
			t.Fatalf("save: %v", err)
		}
		if err := c.load("t", 0, zap.NewNop()); err != nil || f.loads != tc.loads {
			t.Errorf("save error %v: %d loads, want %d", tc.err, f.loads, tc.loads)
		}
		if tc.loads == 2 && c.state.acked.T != 10 {
			t.Errorf("after loading again acked is %+v, want the stored T=10", c.state.acked)
		}
	}
}
