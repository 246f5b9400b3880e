package discovery

import (
	"context"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"

	"github.com/prom-tenant/caddy-prom-tenant/internal/kubewatch"
)

// healthSpec configures the watcher's active probe.
type healthSpec struct {
	scheme   string
	uri      string
	interval time.Duration
	timeout  time.Duration
}

// watchOptions are the settings of one watcher; equal options share one.
type watchOptions struct {
	kind        string
	namespaces  []string // sorted, unique
	selector    string   // canonical (labels.Selector.String())
	port        portSpec
	annotations map[string]string
	health      *healthSpec // nil: no active probe
}

// key identifies the options in the watcher pool (without the connection,
// which the caller adds).
func (o watchOptions) key() string {
	ann := make([]string, 0, len(o.annotations))
	for _, k := range slices.Sorted(maps.Keys(o.annotations)) {
		ann = append(ann, strconv.Quote(k)+"="+strconv.Quote(o.annotations[k]))
	}
	port := o.port.name
	if port == "" {
		port = strconv.Itoa(int(o.port.number))
	}
	health := ""
	if h := o.health; h != nil {
		health = strings.Join([]string{h.scheme, strconv.Quote(h.uri), h.interval.String(), h.timeout.String()}, " ")
	}
	return strings.Join([]string{o.kind, strings.Join(o.namespaces, ","), o.selector, strings.Join(ann, ","), port, health}, "|")
}

// snapshot is the result of one pass over the informers' caches (and the
// probe results).
type snapshot struct {
	addrs []string
}

// watcher runs the informers of one connection and filter, and the optional
// prober, and keeps the current snapshot.
type watcher struct {
	opts   watchOptions
	loop   *kubewatch.Loop
	logger *zap.Logger
	prober *prober // nil without health_uri

	probeKick chan struct{} // coalesced "new addresses: probe now"

	mu         sync.Mutex
	discovered []string        // from the informers, before the probe
	notReady   []string        // from the informers: not ready or terminating; never handed out
	down       map[string]bool // discovered addresses whose last probe failed
	passed     map[string]bool // discovered addresses whose last probe passed

	snapshot atomic.Pointer[snapshot] // nil until the first full list
}

func newWatcher(client kubernetes.Interface, opts watchOptions, logger *zap.Logger) (*watcher, error) {
	if logger == nil {
		logger = zap.NewNop()
	}
	w := &watcher{opts: opts, loop: kubewatch.New(), logger: logger, probeKick: make(chan struct{}, 1)}
	if opts.health != nil {
		w.prober = newProber(opts.health.scheme, opts.health.uri, opts.health.timeout)
	}
	for _, ns := range opts.namespaces {
		f := informers.NewSharedInformerFactoryWithOptions(client, 0,
			informers.WithNamespace(ns),
			informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.LabelSelector = opts.selector }))
		var inf cache.SharedIndexInformer
		switch opts.kind {
		case KindPods:
			inf = f.Core().V1().Pods().Informer()
		case KindServices:
			inf = f.Core().V1().Services().Informer()
		default:
			inf = f.Discovery().V1().EndpointSlices().Informer()
		}
		if err := w.loop.Add(inf); err != nil {
			w.loop.Stop()
			return nil, err
		}
	}
	return w, nil
}

// Destruct stops the informers and the prober; the pool calls it when no
// config uses them.
func (w *watcher) Destruct() error {
	w.loop.Stop()
	return nil
}

// start runs the informers, once; it does not wait for them. It publishes a
// snapshot after the first full list and after every change; with a probe,
// it starts the prober after the first list.
func (w *watcher) start() {
	w.loop.Start(func(first bool) {
		w.pass()
		if first && w.prober != nil {
			go w.probeLoop()
		}
	})
}

// listed returns the informers' objects of type T.
func listed[T any](infs []cache.SharedIndexInformer) []T {
	var out []T
	for _, inf := range infs {
		for _, item := range inf.GetStore().List() {
			if o, ok := item.(T); ok {
				out = append(out, o)
			}
		}
	}
	return out
}

// compute derives the discovered addresses from the informers' caches: the
// serving ones, and those not ready (Services have no readiness).
func (w *watcher) compute() (serving, notReady []string) {
	switch w.opts.kind {
	case KindPods:
		pods := annotated(listed[*corev1.Pod](w.loop.Informers()), w.opts.annotations)
		return podAddresses(pods, w.opts.port), notReadyPodAddresses(pods, w.opts.port)
	case KindServices:
		return serviceAddresses(annotated(listed[*corev1.Service](w.loop.Informers()), w.opts.annotations), w.opts.port), nil
	default:
		ss := annotated(listed[*discoveryv1.EndpointSlice](w.loop.Informers()), w.opts.annotations)
		return addresses(ss, w.opts.port), notServingAddresses(ss, w.opts.port)
	}
}

// pass recomputes the discovered addresses and publishes them.
func (w *watcher) pass() {
	serving, notReady := w.compute()
	w.mu.Lock()
	w.notReady = notReady
	w.mu.Unlock()
	w.setDiscovered(serving)
}

// setDiscovered records the discovered addresses and publishes the
// snapshot. Addresses not seen before count as healthy until probed; with a
// probe, they are probed at once.
func (w *watcher) setDiscovered(addrs []string) {
	w.mu.Lock()
	fresh := false
	for _, a := range addrs {
		if !slices.Contains(w.discovered, a) {
			fresh = true
			break
		}
	}
	w.discovered = addrs
	for a := range w.down {
		if !slices.Contains(addrs, a) {
			delete(w.down, a) // gone; if it comes back it starts afresh
		}
	}
	for a := range w.passed {
		if !slices.Contains(addrs, a) {
			delete(w.passed, a)
		}
	}
	w.publishLocked()
	w.mu.Unlock()
	if fresh && w.prober != nil {
		select {
		case w.probeKick <- struct{}{}:
		default:
		}
	}
}

// publishLocked stores the snapshot: the discovered addresses not marked
// down. w.mu must be held.
func (w *watcher) publishLocked() {
	addrs := healthy(w.discovered, w.down)
	if addrs == nil {
		addrs = []string{}
	}
	old := w.snapshot.Swap(&snapshot{addrs: addrs})
	if old == nil || !slices.Equal(old.addrs, addrs) {
		w.logger.Info("kubernetes upstreams changed", zap.Strings("upstreams", addrs))
	}
}

// probeLoop runs a probe round every interval, and at once when new
// addresses appear.
func (w *watcher) probeLoop() {
	t := time.NewTicker(w.opts.health.interval)
	defer t.Stop()
	for {
		select {
		case <-w.loop.Context().Done():
			return
		case <-t.C:
		case <-w.probeKick:
		}
		w.probeRound(w.loop.Context())
	}
}

// probeRound probes every discovered address and publishes the result.
// Addresses discovered while the round runs keep counting as healthy until
// their own probe.
func (w *watcher) probeRound(ctx context.Context) {
	w.mu.Lock()
	addrs := slices.Clone(w.discovered)
	w.mu.Unlock()
	failed := w.prober.failing(ctx, addrs)
	if ctx.Err() != nil {
		return // stopping: the failures are ours, not the endpoints'
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	down, passed := map[string]bool{}, map[string]bool{}
	for _, a := range w.discovered {
		if slices.Contains(addrs, a) && !failed[a] {
			passed[a] = true
		} else if !slices.Contains(addrs, a) && w.passed[a] {
			passed[a] = true // not probed in this round: keep the last verdict
		}
		switch {
		case failed[a]:
			down[a] = true
			if !w.down[a] {
				w.logger.Warn("kubernetes upstream failed its health probe", zap.String("upstream", a), zap.String("uri", w.opts.health.uri))
			}
		case w.down[a] && slices.Contains(addrs, a):
			w.logger.Info("kubernetes upstream passed its health probe", zap.String("upstream", a))
		case w.down[a]:
			down[a] = true // not probed in this round: keep the last verdict
		}
	}
	w.down, w.passed = down, passed
	w.publishLocked()
}
