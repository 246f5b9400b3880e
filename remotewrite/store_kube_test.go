package remotewrite

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"go.uber.org/zap"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/prom-tenant/caddy-prom-tenant/internal/testenv"
	"github.com/prom-tenant/caddy-prom-tenant/tenancy"
	"github.com/prom-tenant/caddy-prom-tenant/tenancy/v1alpha1"
)

// A replica that takes a copy over reads exactly what the previous one
// saved, and marks the ConfigMap as its own.
func TestKubeStoreHandsOver(t *testing.T) {
	testKubeStoreHandsOver(t, fake.NewClientset())
}

func testKubeStoreHandsOver(t *testing.T, cs kubernetes.Interface) {
	a := &kubeStores{client: cs.CoreV1(), namespace: "ops", prefix: "copy", identity: "replica-a"}
	b := &kubeStores{client: cs.CoreV1(), namespace: "ops", prefix: "copy", identity: "replica-b"}
	sa := a.store("team-a/app", "remote_write http://r/api/v1/write", stateFile{})
	if _, ok, err := sa.load(t.Context()); ok || err != nil {
		t.Fatalf("first load: ok %v, %v", ok, err)
	}
	want := savedState{Target: "remote_write http://r/api/v1/write", Progress: progress{T: 1000, Window: 2000, Series: labels.FromStrings("a", "b"), SeriesT: 1500},
		Batches: []progress{
			{T: 1000, Window: 2000, Series: labels.FromStrings("a", "c"), SeriesT: 1200},
			{T: 1000, Window: 2000, Series: labels.FromStrings("a", "d"), SeriesT: 1900},
		}}
	if err := sa.save(want); err != nil {
		t.Fatal(err)
	}
	sb := b.store("team-a/app", "remote_write http://r/api/v1/write", stateFile{})
	got, ok, err := sb.load(t.Context())
	if err != nil || !ok {
		t.Fatalf("load by the next replica: ok %v, %v", ok, err)
	}
	want.Version = stateVersion
	if got.Target != want.Target || !labels.Equal(got.Progress.Series, want.Progress.Series) || got.Progress.SeriesT != 1500 || !batchesEqual(got.Batches, want.Batches) {
		t.Errorf("loaded %+v, saved %+v", got, want)
	}
	cm, err := cs.CoreV1().ConfigMaps("ops").Get(t.Context(), sb.name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if cm.Annotations[holderKey] != "replica-b" || cm.Annotations[objectKey] != "team-a/app" || cm.Labels[managedByLabel] != managedByValue {
		t.Errorf("ConfigMap metadata %v %v", cm.Annotations, cm.Labels)
	}
	if other := a.store("team-a/app", "remote_write http://elsewhere/api/v1/write", stateFile{}); other.name == sb.name {
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
		return (&kubeStores{client: cs.CoreV1(), namespace: "ops", prefix: "fence", identity: id}).store("team-a/app", "t", stateFile{})
	}
	a, b := stores("replica-a"), stores("replica-b")
	if _, _, err := a.load(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := a.save(savedState{Target: "t", Progress: progress{T: 1}}); err != nil {
		t.Fatal(err)
	}
	if s, ok, err := b.load(t.Context()); err != nil || !ok || s.Progress.T != 1 {
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
	if s, _, err := b.load(t.Context()); err != nil || s.Progress.T != 3 {
		t.Errorf("stored %+v (%v), want b's T=3: a's late writes must not land", s, err)
	}
}

func batchesEqual(a, b []progress) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].T != b[i].T || a[i].Window != b[i].Window || !labels.Equal(a[i].Series, b[i].Series) || a[i].SeriesT != b[i].SeriesT {
			return false
		}
	}
	return true
}

// A ConfigMap written in version 2 (one batch in flight) resumes as a
// file of version 2 does: its batch is the one recorded batch.
func TestKubeStoreReadsVersion2(t *testing.T) {
	cs := fake.NewClientset()
	s := (&kubeStores{client: cs.CoreV1(), namespace: "ops", prefix: "copy", identity: "a"}).store("team-a/app", "t", stateFile{})
	inFlight := progress{T: 1000, Window: 2000, Series: labels.FromStrings("a", "c"), SeriesT: 1200}
	b, err := json.Marshal(savedState{Version: 2, Target: "t", Progress: progress{T: 1000}, InFlight: &inFlight})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cs.CoreV1().ConfigMaps("ops").Create(t.Context(), &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: s.name, Namespace: "ops"}, Data: map[string]string{stateKey: string(b)}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	got, ok, err := s.load(t.Context())
	if err != nil || !ok {
		t.Fatalf("load: ok %v, %v", ok, err)
	}
	if got.InFlight != nil || !batchesEqual(got.Batches, []progress{inFlight}) || got.Version != stateVersion {
		t.Errorf("loaded %+v, want the in-flight batch as the one recorded batch", got)
	}
}

// Upgrading to leader election keeps the progress saved in state_dir: the
// first load carries it into the new ConfigMap (for the same target only),
// and the file is not read again.
func TestKubeStoreCarriesStateDirOver(t *testing.T) {
	cs := fake.NewClientset()
	stores := &kubeStores{client: cs.CoreV1(), namespace: "ops", prefix: "copy", identity: "a"}
	dir := t.TempDir()
	old := savedState{Target: "t", Progress: progress{T: 1000, Window: 2000, Series: labels.FromStrings("a", "b"), SeriesT: 1500},
		Batches: []progress{{T: 1000, Window: 2000, Series: labels.FromStrings("a", "c"), SeriesT: 1700}}}
	legacy := stateFile{path: filepath.Join(dir, "team-a", "app.json")}
	if err := legacy.save(old); err != nil {
		t.Fatal(err)
	}
	s := stores.store("team-a/app", "t", legacy)
	got, ok, err := s.load(t.Context())
	if err != nil || !ok || got.Progress.SeriesT != 1500 || !batchesEqual(got.Batches, old.Batches) {
		t.Fatalf("first load after the upgrade: %+v, ok %v, %v; want the state_dir progress", got, ok, err)
	}
	if _, err := os.Stat(legacy.path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the state file is still at %s (%v): it would be read again over newer progress", legacy.path, err)
	}
	// What the next leader reads is the carried progress.
	got, ok, err = (&kubeStores{client: cs.CoreV1(), namespace: "ops", prefix: "copy", identity: "b"}).store("team-a/app", "t", stateFile{}).load(t.Context())
	if err != nil || !ok || got.Progress.SeriesT != 1500 || !batchesEqual(got.Batches, old.Batches) {
		t.Errorf("the next replica loads %+v, ok %v, %v", got, ok, err)
	}

	// Progress for another target is not carried over.
	other := stateFile{path: filepath.Join(dir, "team-a", "other.json")}
	if err := other.save(savedState{Target: "elsewhere", Progress: progress{T: 5}}); err != nil {
		t.Fatal(err)
	}
	if got, ok, err := stores.store("team-a/other", "t", other).load(t.Context()); ok || err != nil {
		t.Errorf("load with a state file for another target: %+v, ok %v, %v", got, ok, err)
	}
}

// A copier whose term has ended claims nothing: else it would fence the
// new leader and, if paused, send again.
func TestKubeStoreNoClaimAfterTerm(t *testing.T) {
	cs := fake.NewClientset()
	a := (&kubeStores{client: cs.CoreV1(), namespace: "ops", prefix: "copy", identity: "a"}).store("team-a/app", "t", stateFile{})
	b := (&kubeStores{client: cs.CoreV1(), namespace: "ops", prefix: "copy", identity: "b"}).store("team-a/app", "t", stateFile{})
	if _, _, err := b.load(t.Context()); err != nil {
		t.Fatal(err)
	}
	ended, cancel := context.WithCancel(t.Context())
	cancel()
	if _, _, err := a.load(ended); !errors.Is(err, errStoreUnavailable) {
		t.Errorf("load after the term: %v, want errStoreUnavailable", err)
	}
	cm, err := cs.CoreV1().ConfigMaps("ops").Get(t.Context(), a.name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if h := cm.Annotations[holderKey]; h != "b" {
		t.Errorf("the ConfigMap is held by %q after a deposed load, want b", h)
	}
	if err := b.save(savedState{Target: "t"}); err != nil {
		t.Errorf("the leader's save after a deposed load: %v", err)
	}
}

// A reload that changes a copier's settings (its interval) within one
// term makes a new copier, with a new kubeStore for the same ConfigMap,
// that shares the old one's cursor: the state stays loaded, so the claim
// must carry over, or the next save fails with no fault ("saved before it
// was loaded": state_unwritable).
func TestCopierReloadKeepsClaim(t *testing.T) {
	const url = "https://rw.example.com/api/v1/write"
	rw := &tenancy.RemoteWrite{Namespace: "team-a", Object: tenancy.ObjectRef{Name: "app"}, Spec: &v1alpha1.RemoteWriteSpec{
		Enabled: true, Target: &v1alpha1.RemoteWriteTargetSpec{Type: v1alpha1.TargetRemoteWrite, RemoteWrite: &v1alpha1.RemoteWriteTarget{URL: url}}}}
	cfg := &settings{targets: testSettings(t, url), logger: zap.NewNop(),
		stores: &kubeStores{client: fake.NewClientset().CoreV1(), namespace: "ops", prefix: "copy", identity: "a"}}
	term := &leaseTerm{e: &election{lease: "ops/copy-team-a"}, n: 1, ctx: t.Context()}
	old := newCopier(rw, 30*time.Second, cfg, term)
	if old.targetErr != nil {
		t.Fatal(old.targetErr)
	}
	defer old.Destruct()
	if err := old.cur.load(t.Context(), old.target.id, 0, zap.NewNop()); err != nil {
		t.Fatal(err)
	}
	reloaded := newCopier(rw, time.Minute, cfg, term)
	defer reloaded.Destruct()
	if reloaded.cur != old.cur {
		t.Fatal("the reloaded copier got another cursor")
	}
	reloaded.cur.state.windowDone(20)
	if err := reloaded.save(nil); err != nil {
		t.Errorf("save after the reload: %v", err)
	}
}

// fakeStore fails its saves as told.
type fakeStore struct {
	saved   savedState
	ok      bool
	saveErr error
	loads   int
}

func (f *fakeStore) load(context.Context) (savedState, bool, error) {
	f.loads++
	return f.saved, f.ok, nil
}
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
		if err := c.load(t.Context(), "t", 0, zap.NewNop()); err != nil || c.state.acked.T != 10 {
			t.Fatalf("load: %v, acked %+v", err, c.state.acked)
		}
		c.state.windowDone(20)
		f.saveErr = tc.err
		if err := c.save("t", nil); !errors.Is(err, tc.err) {
			t.Fatalf("save: %v", err)
		}
		if err := c.load(t.Context(), "t", 0, zap.NewNop()); err != nil || f.loads != tc.loads {
			t.Errorf("save error %v: %d loads, want %d", tc.err, f.loads, tc.loads)
		}
		if tc.loads == 2 && c.state.acked.T != 10 {
			t.Errorf("after loading again acked is %+v, want the stored T=10", c.state.acked)
		}
	}
}
