package tenancy

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/client-go/rest"

	"github.com/prom-tenant/caddy-prom-tenant/internal/kubeclient"
	"github.com/prom-tenant/caddy-prom-tenant/internal/kubewatch"
	"github.com/prom-tenant/caddy-prom-tenant/tenancy/v1alpha1"
)

// sourceKubernetes names the Kubernetes source among the sources of a tenantSet.
const sourceKubernetes = SourceKubernetes

// SourceKubernetes is ObjectRef.Source of an object read from the Kubernetes
// API: the objects whose status can be written.
const SourceKubernetes = "kubernetes"

// Condition of a MetricAccess's status, so that `kubectl get metricaccess`
// tells a tenant whether its object is in force and, if not, why.
const (
	ConditionReady = "Ready"

	ReasonAccepted        = "Accepted"        // valid, and part of the tenant's policy
	ReasonInvalid         = "Invalid"         // rejected by validation; the message says why
	ReasonEmpty           = "Empty"           // the namespace's objects together allow no series
	ReasonDuplicate       = "Duplicate"       // the same namespace/name comes from a source that wins
	ReasonTooManyPatterns = "TooManyPatterns" // the namespace's objects hold more patterns than max_patterns_per_namespace
)

// KubernetesSource watches MetricAccess objects through the Kubernetes API,
// keeps the tenants in step within moments of a change, and writes each
// object's Ready condition. The watch lives in a pool shared across config
// reloads, so a reload neither re-lists nor loses the tenants; when the API
// server is unreachable the last known objects stay in force.
type KubernetesSource struct {
	// Kubeconfig is the path of a kubeconfig file. Default: the in-cluster
	// configuration (the pod's service account).
	Kubeconfig string `json:"kubeconfig,omitempty"`

	// Namespaces limits the watch to these namespaces. Default: all namespaces.
	Namespaces []string `json:"namespaces,omitempty"`

	logger  *zap.Logger
	tenants *tenantSet
	key     string
	watcher *kubeWatcher
}

// kubeWatchers holds one watcher per connection and namespace set.
var kubeWatchers = caddy.NewUsagePool()

// provision connects the source to its shared watcher. It does no network
// I/O (caddy validate runs it): the watch starts with start.
func (k *KubernetesSource) provision(logger *zap.Logger, tenants *tenantSet) error {
	k.logger, k.tenants = logger, tenants
	cfg, err := kubeclient.Config(k.Kubeconfig, "prom-tenant")
	if err != nil {
		return err
	}
	namespaces := slices.Sorted(slices.Values(k.Namespaces))
	k.key = k.Kubeconfig + "|" + cfg.Host + "|" + strings.Join(namespaces, ",")
	w, _, err := kubeWatchers.LoadOrNew(k.key, func() (caddy.Destructor, error) {
		return newKubeWatcher(cfg, namespaces, logger)
	})
	if err != nil {
		return fmt.Errorf("kubernetes: %w", err)
	}
	k.watcher = w.(*kubeWatcher)
	// A finished compile changes what is in force: a pass writes it to the
	// objects' status.
	tenants.onCompiled(k.watcher.loop.Changed)
	// A config reload: hand the watch's current objects over now. Caddy
	// starts a config's apps in no fixed order, so the http app may take
	// traffic before this app's Start; every Provision runs before any
	// Start. (The watch is already running: its cache, no network.)
	k.watcher.handOver(k)
	return nil
}

// start subscribes to the watcher, starting it on first use; a watcher that
// is already running hands over its current objects at once.
func (k *KubernetesSource) start() { k.watcher.subscribe(k) }

// stop unsubscribes; the registry keeps its last state.
func (k *KubernetesSource) stop() { k.watcher.unsubscribe(k) }

// rejections returns the objects of the watch that are not in force, and
// why, as of the last pass.
func (k *KubernetesSource) rejections() []Rejection {
	if k.watcher == nil {
		return nil
	}
	if p := k.watcher.rejected.Load(); p != nil {
		return *p
	}
	return nil
}

// cleanup releases the pooled watcher, which stops when nothing uses it.
func (k *KubernetesSource) cleanup() error {
	if k.watcher == nil {
		return nil
	}
	_, err := kubeWatchers.Delete(k.key)
	return err
}

// kubeWatcher runs the informers of one connection and namespace set and
// feeds every subscribed source.
type kubeWatcher struct {
	client dynamic.Interface
	loop   *kubewatch.Loop
	logger *zap.Logger

	mu          sync.Mutex
	subscribers map[*KubernetesSource]struct{}
	synced      bool
	decoded     map[types.UID]watchedObject // by UID, reused while the resourceVersion is the same

	// statuses carries the latest desired Ready conditions to the status
	// writer, so that publishing never waits on (rate-limited) writes.
	statuses chan []desiredStatus

	// rejected are the objects of the last pass that are not in force.
	rejected atomic.Pointer[[]Rejection]
}

// desiredStatus is the Ready condition an object should carry, and its
// Warning condition (nil: none).
type desiredStatus struct {
	u       *unstructured.Unstructured
	cond    metav1.Condition
	warning *metav1.Condition
}

func newKubeWatcher(cfg *rest.Config, namespaces []string, logger *zap.Logger) (*kubeWatcher, error) {
	client, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	w := &kubeWatcher{client: client, loop: kubewatch.New(), logger: logger, subscribers: map[*KubernetesSource]struct{}{},
		decoded: map[types.UID]watchedObject{}, statuses: make(chan []desiredStatus, 1)}
	if len(namespaces) == 0 {
		namespaces = []string{metav1.NamespaceAll}
	}
	for _, ns := range namespaces {
		f := dynamicinformer.NewFilteredDynamicSharedInformerFactory(client, 0, ns, nil)
		if err := w.loop.Add(f.ForResource(v1alpha1.Resource).Informer()); err != nil {
			w.loop.Stop()
			return nil, err
		}
	}
	return w, nil
}

// Destruct stops the informers; the pool calls it when no config uses them.
func (w *kubeWatcher) Destruct() error {
	w.loop.Stop()
	return nil
}

func (w *kubeWatcher) subscribe(k *KubernetesSource) {
	w.mu.Lock()
	w.subscribers[k] = struct{}{}
	synced := w.synced
	w.mu.Unlock()
	w.loop.Start(func(first bool) {
		if first {
			w.mu.Lock()
			w.synced = true
			w.mu.Unlock()
			go w.writeStatuses()
		}
		w.pass()
	})
	if synced {
		// A config reload: provision handed the objects over already; hand
		// over what changed since (publish skips unchanged namespaces).
		w.handOver(k)
	}
}

// handOver publishes the watch's current objects to k's tenants if the
// watch has synced: a config reload, whose new registry must hold the
// tenants before any of the new config's handlers serve.
func (w *kubeWatcher) handOver(k *KubernetesSource) {
	w.mu.Lock()
	synced := w.synced
	w.mu.Unlock()
	if synced {
		_, valid := w.collect()
		k.tenants.publish(sourceKubernetes, valid)
	}
}

func (w *kubeWatcher) unsubscribe(k *KubernetesSource) {
	w.mu.Lock()
	delete(w.subscribers, k)
	w.mu.Unlock()
}

// watchedObject is an object from the informers' caches, decoded and validated.
type watchedObject struct {
	u        *unstructured.Unstructured
	obj      *v1alpha1.MetricAccess
	err      error    // why it is invalid, if it is
	warnings []string // EqualityWarnings of a valid object
}

// collect reads every object from the informers' caches and returns them,
// with the valid ones ready to publish. An object whose spec did not change
// (the same generation; a status write bumps only the resourceVersion) is
// not decoded again: the same *MetricAccess lets the tenantSet skip
// recompiling its namespace.
func (w *kubeWatcher) collect() (all []watchedObject, valid []sourcedObject) {
	w.mu.Lock()
	defer w.mu.Unlock()
	seen := make(map[types.UID]watchedObject, len(w.decoded))
	for _, inf := range w.loop.Informers() {
		for _, item := range inf.GetStore().List() {
			u, ok := item.(*unstructured.Unstructured)
			if !ok {
				continue
			}
			o, ok := w.decoded[u.GetUID()]
			if !ok || !sameSpec(o.u, u) {
				var m v1alpha1.MetricAccess
				err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, &m)
				if err == nil {
					err = m.Validate()
				}
				o = watchedObject{u: u, obj: &m, err: err}
				if err == nil {
					o.warnings = m.EqualityWarnings()
				}
			}
			o.u = u
			seen[u.GetUID()] = o
			all = append(all, o)
			if o.err == nil {
				valid = append(valid, sourcedObject{obj: o.obj, ref: ObjectRef{Name: o.obj.Name, Source: sourceKubernetes}})
			}
		}
	}
	w.decoded = seen
	return all, valid
}

// sameSpec reports whether b is a of the same spec: the same generation,
// or, where the API server keeps none, the same resourceVersion.
func sameSpec(a, b *unstructured.Unstructured) bool {
	if a.GetGeneration() > 0 && b.GetGeneration() > 0 {
		return a.GetGeneration() == b.GetGeneration()
	}
	return a.GetResourceVersion() == b.GetResourceVersion()
}

// pass publishes the valid objects to each subscriber and sets each
// object's Ready condition.
func (w *kubeWatcher) pass() {
	entries, valid := w.collect()
	w.mu.Lock()
	subs := make([]*KubernetesSource, 0, len(w.subscribers))
	for k := range w.subscribers {
		subs = append(subs, k)
	}
	w.mu.Unlock()
	var res publishResult
	for _, k := range subs {
		res = k.tenants.publish(sourceKubernetes, valid)
	}
	if len(subs) == 0 {
		return // nothing in force to report on
	}
	desired := make([]desiredStatus, 0, len(entries))
	rejected := []Rejection{}
	for _, e := range entries {
		cond := metav1.Condition{Type: ConditionReady, Status: metav1.ConditionTrue, Reason: ReasonAccepted,
			Message: "in force: part of the tenant's policy", ObservedGeneration: e.u.GetGeneration()}
		switch {
		case e.err != nil:
			cond.Status, cond.Reason, cond.Message = metav1.ConditionFalse, ReasonInvalid, e.err.Error()
		case res.dupErrs[e.obj.Key()] != nil:
			cond.Status, cond.Reason, cond.Message = metav1.ConditionFalse, ReasonDuplicate, res.dupErrs[e.obj.Key()].Error()
		case errors.As(res.nsErrs[e.obj.Namespace], new(*tooManyPatternsError)):
			cond.Status, cond.Reason, cond.Message = metav1.ConditionFalse, ReasonTooManyPatterns, res.nsErrs[e.obj.Namespace].Error()
		case res.nsErrs[e.obj.Namespace] != nil:
			cond.Status, cond.Reason, cond.Message = metav1.ConditionFalse, ReasonEmpty, res.nsErrs[e.obj.Namespace].Error()
		case res.compiling[e.obj.Namespace]:
			// Its outcome is not known yet: the status stays as it is, and
			// the pass after the compile writes it.
			continue
		}
		d := desiredStatus{u: e.u, cond: cond}
		if e.err == nil && len(e.warnings) > 0 {
			d.warning = &metav1.Condition{Type: ConditionWarning, Status: metav1.ConditionTrue, Reason: ReasonRegexLikeLiteral,
				Message: warningMessage(e.warnings), ObservedGeneration: e.u.GetGeneration()}
		}
		desired = append(desired, d)
		if cond.Status != metav1.ConditionTrue {
			rejected = append(rejected, Rejection{Namespace: e.u.GetNamespace(), Name: e.u.GetName(), Source: SourceKubernetes,
				Reason: cond.Reason, Error: cond.Message})
		}
	}
	w.rejected.Store(&rejected)
	// Hand the latest desired state to the writer, replacing one it has not
	// taken yet: it is superseded.
	select {
	case <-w.statuses:
	default:
	}
	w.statuses <- desired
}

// writeStatuses writes Ready conditions, always from the latest desired
// state (a newer one replaces what is left of the older); the client's rate
// limit paces it without holding up publishing. It only receives, and pass
// is the only sender, so the hand-over cannot block.
func (w *kubeWatcher) writeStatuses() {
	var pending []desiredStatus
	for {
		if len(pending) == 0 {
			select {
			case <-w.loop.Context().Done():
				return
			case pending = <-w.statuses:
			}
			continue
		}
		select {
		case pending = <-w.statuses:
			continue
		default:
		}
		w.setConditions(pending[0])
		pending = pending[1:]
	}
}

// maxWarningBytes bounds the Warning condition's message: the API server
// refuses a condition message over 32 KiB, and a line quotes a value of up
// to 1 KiB three times.
const maxWarningBytes = 16 << 10

// warningMessage is the Warning condition's message: one line per warning,
// as many as fit in maxWarningBytes, and how many more there are.
func warningMessage(warnings []string) string {
	var b strings.Builder
	for i, w := range warnings {
		if b.Len()+len(w)+1 > maxWarningBytes {
			fmt.Fprintf(&b, "... and %d more", len(warnings)-i)
			break
		}
		b.WriteString(w)
		b.WriteByte('\n')
	}
	return strings.TrimSuffix(b.String(), "\n")
}

// setConditions writes the desired conditions to the object's status if
// they differ from what is there, so that the update it causes leads to no
// further write.
func (w *kubeWatcher) setConditions(d desiredStatus) {
	u := d.u
	var status v1alpha1.MetricAccessStatus
	if raw, ok := u.Object["status"].(map[string]any); ok {
		_ = runtime.DefaultUnstructuredConverter.FromUnstructured(raw, &status)
	}
	changed := meta.SetStatusCondition(&status.Conditions, d.cond)
	if d.warning != nil {
		changed = meta.SetStatusCondition(&status.Conditions, *d.warning) || changed
	} else {
		changed = meta.RemoveStatusCondition(&status.Conditions, ConditionWarning) || changed
	}
	if !changed {
		return
	}
	raw, err := runtime.DefaultUnstructuredConverter.ToUnstructured(&status)
	if err != nil {
		w.logger.Error("encoding MetricAccess status", zap.Error(err))
		return
	}
	obj := u.DeepCopy()
	obj.Object["status"] = raw
	_, err = w.client.Resource(v1alpha1.Resource).Namespace(u.GetNamespace()).
		UpdateStatus(w.loop.Context(), obj, metav1.UpdateOptions{FieldManager: "prom-tenant"})
	if err != nil {
		// A conflict means the object changed: its update event brings
		// another pass. Anything else is logged; the next change retries.
		w.logger.Warn("writing MetricAccess status", zap.String("object", u.GetNamespace()+"/"+u.GetName()), zap.Error(err))
	}
}
