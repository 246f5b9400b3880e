package remotewrite

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	corev1client "k8s.io/client-go/kubernetes/typed/core/v1"
)

// With leader election, a copy's progress lives in a ConfigMap of the
// proxy's own namespace (the Leases' namespace), one per MetricAccess and
// target, so that the replica that takes a tenant over resumes exactly
// where the previous leader's acknowledgements ended. Starting from
// initial_lookback instead would resend stored samples in batches mixed
// with new ones, which a receiver refuses whole (loss). Tenants cannot
// write there: progress they could edit would let them skip or replay.
//
// Fencing: every write is an update at the resourceVersion this replica
// last read or wrote. A new leader's first load writes its identity into
// the ConfigMap (the claim), so a deposed leader's late save fails on the
// conflict, and the copier then sends nothing more (it sends a batch only
// after saving where the batch ends).

const (
	stateKey         = "state.json"
	holderKey        = "prom-tenant.io/copy-holder"
	objectKey        = "prom-tenant.io/copy-object"
	managedByLabel   = "app.kubernetes.io/managed-by"
	managedByValue   = "prom-tenant"
	kubeStoreTimeout = 10 * time.Second
)

// errFenced is a save refused because another replica wrote the progress
// since this one read it: this replica lost the copy.
var errFenced = errors.New("the copy's progress was written by another replica since this one took it (its lease was lost): this replica stops sending")

// kubeStores makes the kubeStore of each copy.
type kubeStores struct {
	client    corev1client.ConfigMapsGetter
	namespace string // the Leases' namespace
	prefix    string // the Leases' name prefix
	identity  string // this replica's, as in its Leases
}

// store is the store of object's copy to targetID; legacy is where the
// copy's progress was kept before leader election (state_dir), read once
// when there is no ConfigMap yet.
func (k *kubeStores) store(object, targetID string, legacy stateFile) *kubeStore {
	return &kubeStore{stores: k, object: object, target: targetID, name: configMapName(k.prefix, object, targetID), legacy: legacy}
}

// configMapName is a valid object name for a copy: the object's key and
// target can be longer than a name allows and hold any character.
func configMapName(prefix, object, targetID string) string {
	h := sha256.Sum256([]byte(object + "\x00" + targetID))
	return prefix + "-state-" + hex.EncodeToString(h[:10])
}

// kubeStore keeps one copy's savedState in a ConfigMap; see above.
type kubeStore struct {
	stores *kubeStores
	object string // namespace/name of the MetricAccess
	target string
	name   string
	legacy stateFile

	mu sync.Mutex
	cm *corev1.ConfigMap // as last read or written; nil before a claim
}

// load reads the progress and claims the ConfigMap for this replica (an
// update that fences off the previous writer), creating it if there is
// none. It claims nothing once ctx is done: a deposed copier must not take
// the progress back from the new leader.
func (s *kubeStore) load(ctx context.Context) (savedState, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var saved savedState
	if err := ctx.Err(); err != nil {
		return saved, false, fmt.Errorf("%w: %w", errStoreUnavailable, err)
	}
	ctx, cancel := context.WithTimeout(ctx, kubeStoreTimeout)
	defer cancel()
	cms := s.stores.client.ConfigMaps(s.stores.namespace)
	cm, err := cms.Get(ctx, s.name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return s.create(ctx)
	}
	if err != nil {
		return saved, false, fmt.Errorf("%w: reading ConfigMap %s/%s: %v", errStoreUnavailable, s.stores.namespace, s.name, err)
	}
	// Claim before use: a conflict means another replica wrote since the
	// read, so what was read may be stale; the next pass reads again.
	if cm, err = cms.Update(ctx, s.claimed(cm.DeepCopy()), metav1.UpdateOptions{}); err != nil {
		return saved, false, fmt.Errorf("%w: claiming ConfigMap %s/%s: %v", errStoreUnavailable, s.stores.namespace, s.name, err)
	}
	s.cm = cm
	raw, ok := cm.Data[stateKey]
	if !ok {
		return saved, false, nil
	}
	if err := json.Unmarshal([]byte(raw), &saved); err != nil {
		return saved, false, fmt.Errorf("ConfigMap %s/%s: %w", s.stores.namespace, s.name, err)
	}
	if err := saved.upgrade(); err != nil {
		return saved, false, fmt.Errorf("ConfigMap %s/%s: %w", s.stores.namespace, s.name, err)
	}
	return saved, true, nil
}

// create makes the copy's ConfigMap, claimed. The copy may have run
// before leader election was on (an upgrade): its progress is then in
// state_dir, and is carried into the ConfigMap, since starting from
// initial_lookback would skip what the downtime held, or resend stored
// samples mixed with new ones. The file is renamed once carried over, so
// that it is never read again over newer progress.
func (s *kubeStore) create(ctx context.Context) (savedState, bool, error) {
	cm := s.claimed(&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: s.name, Namespace: s.stores.namespace}})
	saved, ok, legacyErr := s.legacy.load(ctx)
	if ok = ok && saved.Target == s.target; ok {
		b, err := json.Marshal(saved)
		if err != nil {
			return savedState{}, false, err
		}
		cm.Data = map[string]string{stateKey: string(b)}
	}
	cm, err := s.stores.client.ConfigMaps(s.stores.namespace).Create(ctx, cm, metav1.CreateOptions{})
	if err != nil {
		return savedState{}, false, fmt.Errorf("%w: creating ConfigMap %s/%s: %v", errStoreUnavailable, s.stores.namespace, s.name, err)
	}
	s.cm = cm
	if ok {
		// Failing to rename leaves a file that is read only if the
		// ConfigMap is deleted: not a reason to stop copying.
		_ = os.Rename(s.legacy.path, s.legacy.path+".migrated")
		return saved, true, nil
	}
	if legacyErr != nil {
		return savedState{}, false, legacyErr
	}
	return savedState{}, false, nil
}

// claimed marks cm as this replica's.
func (s *kubeStore) claimed(cm *corev1.ConfigMap) *corev1.ConfigMap {
	if cm.Labels == nil {
		cm.Labels = map[string]string{}
	}
	if cm.Annotations == nil {
		cm.Annotations = map[string]string{}
	}
	cm.Labels[managedByLabel] = managedByValue
	cm.Annotations[holderKey] = s.stores.identity
	cm.Annotations[objectKey] = s.object
	return cm
}

// save writes st at the resourceVersion last seen: errFenced if another
// replica wrote since. Every failure wraps errStoreUnavailable: the cursor
// then loads again (and claims again) before its next pass, since what is
// stored may be this write, the one before, or another replica's.
func (s *kubeStore) save(st savedState) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cm == nil {
		return fmt.Errorf("%w: saved before it was loaded", errStoreUnavailable)
	}
	st.Version = stateVersion
	b, err := json.Marshal(st)
	if err != nil {
		return err
	}
	cm := s.cm.DeepCopy()
	cm.Data = map[string]string{stateKey: string(b)}
	ctx, cancel := context.WithTimeout(context.Background(), kubeStoreTimeout)
	defer cancel()
	cm, err = s.stores.client.ConfigMaps(s.stores.namespace).Update(ctx, cm, metav1.UpdateOptions{})
	switch {
	case apierrors.IsConflict(err), apierrors.IsNotFound(err):
		s.cm = nil
		return fmt.Errorf("%w: ConfigMap %s/%s: %w", errStoreUnavailable, s.stores.namespace, s.name, errFenced)
	case err != nil:
		// The update may have been applied all the same: the next pass
		// reads the ConfigMap again rather than trusting s.cm.
		s.cm = nil
		return fmt.Errorf("%w: saving to ConfigMap %s/%s: %v", errStoreUnavailable, s.stores.namespace, s.name, err)
	}
	s.cm = cm
	return nil
}
