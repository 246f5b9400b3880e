// Package discovery provides reverse_proxy upstreams discovered from the
// Kubernetes API: `reverse_proxy { dynamic kubernetes { ... } }`.
package discovery

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp/reverseproxy"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/clientcmd"
)

func init() {
	caddy.RegisterModule(KubernetesUpstreams{})
	caddy.RegisterModule(new(startApp))
}

// Interface guards.
var (
	_ reverseproxy.UpstreamSource = (*KubernetesUpstreams)(nil)
	_ caddy.Provisioner           = (*KubernetesUpstreams)(nil)
	_ caddy.CleanerUpper          = (*KubernetesUpstreams)(nil)
	_ caddyfile.Unmarshaler       = (*KubernetesUpstreams)(nil)
	_ caddy.App                   = (*startApp)(nil)
)

// KindEndpointSlices is the only resource kind supported so far.
const KindEndpointSlices = "endpointslices"

// KubernetesUpstreams is a dynamic upstream source for reverse_proxy that
// follows EndpointSlices (discovery.k8s.io/v1) through an informer. The
// upstreams are the ready, non-terminating endpoints on the chosen port,
// kept as a snapshot recomputed on every change; GetUpstreams only reads the
// snapshot. The informer is shared across config reloads and starts when
// the config starts, never during provisioning (caddy validate).
type KubernetesUpstreams struct {
	// Kubeconfig is the path of a kubeconfig file. Default: the in-cluster
	// configuration (the pod's service account).
	Kubeconfig string `json:"kubeconfig,omitempty"`

	// Namespaces to watch. Required.
	Namespaces []string `json:"namespaces,omitempty"`

	// Selector is a label selector on the EndpointSlices, e.g.
	// kubernetes.io/service-name=prometheus. Default: every slice in the
	// namespaces.
	Selector string `json:"selector,omitempty"`

	// Port is the endpoint port to dial: a port name or a number. Required.
	Port string `json:"port,omitempty"`

	// Scheme is http or https (default http). Informational: TLS to the
	// upstreams is configured on reverse_proxy's transport.
	Scheme string `json:"scheme,omitempty"`

	// Kind is the resource the endpoints come from. Only "endpointslices"
	// (the default) is supported so far.
	Kind string `json:"kind,omitempty"`

	logger  *zap.Logger
	key     string
	watcher *watcher
}

// CaddyModule returns the Caddy module information.
func (KubernetesUpstreams) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.reverse_proxy.upstreams.kubernetes",
		New: func() caddy.Module { return new(KubernetesUpstreams) },
	}
}

// watchers holds one watcher per connection and filter settings, shared by
// every config that uses the same ones (a reload provisions the new config
// before the old one is cleaned up, so the watcher lives on).
var watchers = caddy.NewUsagePool()

// Provision checks the settings and connects the source to its pooled
// watcher. It does no network I/O.
func (k *KubernetesUpstreams) Provision(ctx caddy.Context) error {
	k.logger = ctx.Logger()
	if k.Kind == "" {
		k.Kind = KindEndpointSlices
	}
	if k.Kind != KindEndpointSlices {
		return fmt.Errorf("kubernetes upstreams: kind %q is not supported (only %q)", k.Kind, KindEndpointSlices)
	}
	switch k.Scheme {
	case "", "http", "https":
	default:
		return fmt.Errorf("kubernetes upstreams: scheme %q: want http or https", k.Scheme)
	}
	if len(k.Namespaces) == 0 {
		return fmt.Errorf("kubernetes upstreams: at least one namespace is required")
	}
	for _, ns := range k.Namespaces {
		if ns == "" {
			return fmt.Errorf("kubernetes upstreams: empty namespace")
		}
	}
	port, err := parsePort(k.Port)
	if err != nil {
		return fmt.Errorf("kubernetes upstreams: %w", err)
	}
	sel, err := labels.Parse(k.Selector)
	if err != nil {
		return fmt.Errorf("kubernetes upstreams: selector %q: %w", k.Selector, err)
	}
	var cfg *rest.Config
	if k.Kubeconfig != "" {
		cfg, err = clientcmd.BuildConfigFromFlags("", k.Kubeconfig)
	} else {
		cfg, err = rest.InClusterConfig()
	}
	if err != nil {
		return fmt.Errorf("kubernetes upstreams: %w", err)
	}
	cfg = rest.CopyConfig(cfg)
	cfg.UserAgent = "prom-tenant"
	namespaces := slices.Compact(slices.Sorted(slices.Values(k.Namespaces)))
	k.key = strings.Join([]string{k.Kubeconfig, cfg.Host, k.Kind, strings.Join(namespaces, ","), sel.String(), k.Port}, "|")
	w, _, err := watchers.LoadOrNew(k.key, func() (caddy.Destructor, error) {
		return newWatcher(cfg, namespaces, sel.String(), port, k.logger)
	})
	if err != nil {
		return fmt.Errorf("kubernetes upstreams: %w", err)
	}
	k.watcher = w.(*watcher)
	registerStart(ctx, k.watcher)
	return nil
}

// Cleanup releases the pooled watcher; it stops when no config uses it.
func (k *KubernetesUpstreams) Cleanup() error {
	if k.watcher == nil {
		return nil
	}
	k.watcher = nil
	_, err := watchers.Delete(k.key)
	return err
}

// GetUpstreams returns the current upstreams, sorted by address. It does no
// I/O and returns new Upstream values on every call: reverse_proxy
// provisions and mutates them (sharing them across calls races, caddy
// #5736). With no serving endpoint the list is empty and reverse_proxy
// answers 503.
func (k *KubernetesUpstreams) GetUpstreams(*http.Request) ([]*reverseproxy.Upstream, error) {
	w := k.watcher
	if w == nil {
		return []*reverseproxy.Upstream{}, nil
	}
	w.start() // normally started already by the config's start; a no-op then
	snap := w.snapshot.Load()
	if snap == nil {
		if c := k.logger.Check(zapcore.DebugLevel, "kubernetes upstreams not synced yet: no upstreams"); c != nil {
			c.Write(zap.Strings("namespaces", k.Namespaces), zap.String("selector", k.Selector))
		}
		return []*reverseproxy.Upstream{}, nil
	}
	ups := make([]*reverseproxy.Upstream, len(snap.addrs))
	for i, a := range snap.addrs {
		ups[i] = &reverseproxy.Upstream{Dial: a}
	}
	return ups, nil
}

// UnmarshalCaddyfile reads
//
//	dynamic kubernetes {
//	    kubeconfig <path>
//	    namespace  <ns>         (or: namespaces <ns...>)
//	    selector   <label selector>
//	    port       <name|number>
//	    scheme     http|https
//	    kind       endpointslices
//	}
func (k *KubernetesUpstreams) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // the source's name
	if d.NextArg() {
		return d.ArgErr()
	}
	one := func(field *string) error {
		if *field != "" {
			return d.Errf("%s already specified", d.Val())
		}
		if !d.NextArg() {
			return d.ArgErr()
		}
		*field = d.Val()
		if d.NextArg() {
			return d.ArgErr()
		}
		return nil
	}
	for d.NextBlock(0) {
		var err error
		switch d.Val() {
		case "kubeconfig":
			err = one(&k.Kubeconfig)
		case "namespace", "namespaces":
			dir := d.Val()
			args := d.RemainingArgs()
			if len(args) == 0 {
				return d.ArgErr()
			}
			if dir == "namespace" && len(args) != 1 {
				return d.Errf("namespace takes one name; use namespaces for several")
			}
			k.Namespaces = append(k.Namespaces, args...)
		case "selector":
			// A selector may contain spaces ("app in (a, b)"): join the rest of the line.
			if k.Selector != "" {
				return d.Errf("selector already specified")
			}
			args := d.RemainingArgs()
			if len(args) == 0 {
				return d.ArgErr()
			}
			k.Selector = strings.Join(args, " ")
			if _, perr := labels.Parse(k.Selector); perr != nil {
				return d.Errf("selector %q: %v", k.Selector, perr)
			}
		case "port":
			err = one(&k.Port)
			if err == nil {
				if _, perr := parsePort(k.Port); perr != nil {
					return d.Err(perr.Error())
				}
			}
		case "scheme":
			err = one(&k.Scheme)
			if err == nil && k.Scheme != "http" && k.Scheme != "https" {
				return d.Errf("scheme %q: want http or https", k.Scheme)
			}
		case "kind":
			err = one(&k.Kind)
			if err == nil && k.Kind != KindEndpointSlices {
				return d.Errf("kind %q is not supported (only %s)", k.Kind, KindEndpointSlices)
			}
		default:
			return d.Errf("unknown subdirective %q", d.Val())
		}
		if err != nil {
			return err
		}
	}
	if len(k.Namespaces) == 0 {
		return d.Err("kubernetes upstreams: namespace is required")
	}
	if k.Port == "" {
		return d.Err("kubernetes upstreams: port is required")
	}
	return nil
}

// snapshot is the result of one pass over the informers' caches.
type snapshot struct {
	addrs []string
}

// watcher runs the EndpointSlice informers of one connection and filter and
// keeps the current snapshot.
type watcher struct {
	informers []cache.SharedIndexInformer
	port      portSpec
	logger    *zap.Logger

	ctx       context.Context
	cancel    context.CancelFunc
	startOnce sync.Once
	kick      chan struct{} // coalesced "something changed"

	snapshot atomic.Pointer[snapshot] // nil until the first full list
}

func newWatcher(cfg *rest.Config, namespaces []string, selector string, port portSpec, logger *zap.Logger) (*watcher, error) {
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	w := &watcher{port: port, logger: logger, ctx: ctx, cancel: cancel, kick: make(chan struct{}, 1)}
	for _, ns := range namespaces {
		f := informers.NewSharedInformerFactoryWithOptions(client, 0,
			informers.WithNamespace(ns),
			informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.LabelSelector = selector }))
		inf := f.Discovery().V1().EndpointSlices().Informer()
		if _, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
			AddFunc:    func(any) { w.changed() },
			UpdateFunc: func(any, any) { w.changed() },
			DeleteFunc: func(any) { w.changed() },
		}); err != nil {
			cancel()
			return nil, err
		}
		w.informers = append(w.informers, inf)
	}
	return w, nil
}

// Destruct stops the informers; the pool calls it when no config uses them.
func (w *watcher) Destruct() error {
	w.cancel()
	return nil
}

// start runs the informers, once; it does not wait for them.
func (w *watcher) start() {
	w.startOnce.Do(func() {
		for _, inf := range w.informers {
			go inf.Run(w.ctx.Done())
		}
		go w.run()
	})
}

func (w *watcher) changed() {
	select {
	case w.kick <- struct{}{}:
	default: // a pass is already due; it will see this change too
	}
}

// run publishes a snapshot after the first full list and after every change.
func (w *watcher) run() {
	for _, inf := range w.informers {
		if !cache.WaitForCacheSync(w.ctx.Done(), inf.HasSynced) {
			return
		}
	}
	w.pass()
	for {
		select {
		case <-w.ctx.Done():
			return
		case <-w.kick:
			w.pass()
		}
	}
}

func (w *watcher) pass() {
	var all []*discoveryv1.EndpointSlice
	for _, inf := range w.informers {
		for _, item := range inf.GetStore().List() {
			if s, ok := item.(*discoveryv1.EndpointSlice); ok {
				all = append(all, s)
			}
		}
	}
	addrs := addresses(all, w.port)
	old := w.snapshot.Swap(&snapshot{addrs: addrs})
	if old == nil || !slices.Equal(old.addrs, addrs) {
		w.logger.Info("kubernetes upstreams changed", zap.Strings("upstreams", addrs))
	}
}

// startApp starts the watchers of one config when that config starts, so
// that provisioning (which caddy validate runs too) never touches the
// network. It is not configured by users: KubernetesUpstreams loads it into
// its config with ctx.App.
type startApp struct {
	mu       sync.Mutex
	watchers []*watcher
	started  bool
}

const startAppID = "prom_tenant_discovery"

// CaddyModule returns the Caddy module information.
func (*startApp) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  startAppID,
		New: func() caddy.Module { return new(startApp) },
	}
}

// Start starts the config's watchers without waiting for them.
func (a *startApp) Start() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.started = true
	for _, w := range a.watchers {
		w.start()
	}
	return nil
}

// Stop does nothing: the watchers are shared with the next config and stop
// when the pool's last user cleans up.
func (a *startApp) Stop() error { return nil }

func (a *startApp) add(w *watcher) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.watchers = append(a.watchers, w)
	if a.started {
		w.start()
	}
}

// registerStart arranges for w to start when ctx's config starts. A context
// without a config (unit tests) has no start: GetUpstreams starts w then.
func registerStart(ctx caddy.Context, w *watcher) {
	defer func() { _ = recover() }() // ctx.App dereferences the config, nil outside a real config load
	app, err := ctx.App(startAppID)
	if err != nil {
		return
	}
	if a, ok := app.(*startApp); ok {
		a.add(w)
	}
}
