// Package discovery provides reverse_proxy upstreams discovered from the
// Kubernetes API: `reverse_proxy { dynamic kubernetes { ... } }`.
package discovery

import (
	"cmp"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp/reverseproxy"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/kubernetes"

	"github.com/prom-tenant/caddy-prom-tenant/internal/kubeclient"
	"github.com/prom-tenant/caddy-prom-tenant/internal/metricreg"
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

// Resource kinds the upstreams can come from.
const (
	KindEndpointSlices = "endpointslices" // ready, non-terminating endpoints (the default)
	KindPods           = "pods"           // IPs of ready, non-terminating pods
	KindServices       = "services"       // cluster IPs (headless services skipped)
)

func validKind(k string) bool {
	return k == KindEndpointSlices || k == KindPods || k == KindServices
}

// KubernetesUpstreams is a dynamic upstream source for reverse_proxy that
// follows EndpointSlices (discovery.k8s.io/v1), Pods or Services through an
// informer. The upstreams are the ready, non-terminating endpoints (pods;
// services' cluster IPs) on the chosen port, kept as a snapshot recomputed
// on every change and, with HealthURI, on every probe round; GetUpstreams
// only reads the snapshot. The informer is shared across config reloads and starts when
// the config starts, never during provisioning (caddy validate).
type KubernetesUpstreams struct {
	// Kubeconfig is the path of a kubeconfig file. Default: the in-cluster
	// configuration (the pod's service account).
	Kubeconfig string `json:"kubeconfig,omitempty"`

	// Namespaces to watch. Required.
	Namespaces []string `json:"namespaces,omitempty"`

	// Selector is a label selector on the watched objects (the
	// EndpointSlices, Pods or Services), e.g.
	// kubernetes.io/service-name=prometheus. Default: every object in the
	// namespaces.
	Selector string `json:"selector,omitempty"`

	// Annotations the objects must carry, with exactly these values (for
	// EndpointSlices: the slice's own annotations). Default: no filter.
	Annotations map[string]string `json:"annotations,omitempty"`

	// Port is the endpoint port to dial: a port name or a number. Required.
	Port string `json:"port,omitempty"`

	// Scheme is http or https (default http). Used by the active probe;
	// TLS of the proxied traffic is configured on reverse_proxy's transport.
	Scheme string `json:"scheme,omitempty"`

	// Kind is the resource the endpoints come from: "endpointslices" (the
	// default), "pods" or "services".
	Kind string `json:"kind,omitempty"`

	// HealthURI enables an active probe run by the shared watcher (Caddy's
	// own active health checks do not run for dynamic upstreams): every
	// discovered address is sent GET scheme://address+HealthURI, and only
	// those answering 2xx are handed out. A newly discovered address counts
	// as healthy until its first probe fails (it is probed at once).
	HealthURI string `json:"health_uri,omitempty"`

	// HealthInterval is the time between probe rounds. Default 10s.
	HealthInterval caddy.Duration `json:"health_interval,omitempty"`

	// HealthTimeout bounds one probe. Default 2s.
	HealthTimeout caddy.Duration `json:"health_timeout,omitempty"`

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
	if err := metricreg.Register(ctx.GetMetricsRegistry(), collector); err != nil {
		return fmt.Errorf("kubernetes upstreams: registering metrics: %w", err)
	}
	if k.Kind == "" {
		k.Kind = KindEndpointSlices
	}
	if !validKind(k.Kind) {
		return fmt.Errorf("kubernetes upstreams: kind %q: want %s, %s or %s", k.Kind, KindEndpointSlices, KindPods, KindServices)
	}
	for key := range k.Annotations {
		if key == "" {
			return fmt.Errorf("kubernetes upstreams: empty annotation key")
		}
	}
	var health *healthSpec
	if k.HealthURI != "" {
		if err := checkHealthURI(k.HealthURI); err != nil {
			return fmt.Errorf("kubernetes upstreams: %w", err)
		}
		if k.HealthInterval < 0 || k.HealthTimeout < 0 {
			return fmt.Errorf("kubernetes upstreams: negative health_interval or health_timeout")
		}
		health = &healthSpec{scheme: k.Scheme, uri: k.HealthURI,
			interval: cmp.Or(time.Duration(k.HealthInterval), defaultHealthInterval),
			timeout:  cmp.Or(time.Duration(k.HealthTimeout), defaultHealthTimeout)}
		if health.scheme == "" {
			health.scheme = "http"
		}
	} else if k.HealthInterval != 0 || k.HealthTimeout != 0 {
		return fmt.Errorf("kubernetes upstreams: health_interval and health_timeout need health_uri")
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
	cfg, err := kubeclient.Config(k.Kubeconfig, "prom-tenant-discovery")
	if err != nil {
		return fmt.Errorf("upstreams: %w", err)
	}
	namespaces := slices.Compact(slices.Sorted(slices.Values(k.Namespaces)))
	opts := watchOptions{kind: k.Kind, namespaces: namespaces, selector: sel.String(), port: port,
		annotations: k.Annotations, health: health}
	k.key = strings.Join([]string{k.Kubeconfig, cfg.Host, opts.key()}, "|")
	w, _, err := watchers.LoadOrNew(k.key, func() (caddy.Destructor, error) {
		client, err := kubernetes.NewForConfig(cfg)
		if err != nil {
			return nil, err
		}
		return newWatcher(client, opts, k.logger)
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
//	    kind       endpointslices|pods|services
//	    annotation <key>=<value>   (repeatable; several pairs per line allowed)
//	    health_uri      <path>
//	    health_interval <duration>  (default 10s)
//	    health_timeout  <duration>  (default 2s)
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
			if err == nil && !validKind(k.Kind) {
				return d.Errf("kind %q: want %s, %s or %s", k.Kind, KindEndpointSlices, KindPods, KindServices)
			}
		case "annotation", "annotations":
			args := d.RemainingArgs()
			if len(args) == 0 {
				return d.ArgErr()
			}
			for _, a := range args {
				key, val, ok := strings.Cut(a, "=")
				if !ok || key == "" {
					return d.Errf("annotation %q: want <key>=<value>", a)
				}
				if old, dup := k.Annotations[key]; dup && old != val {
					return d.Errf("annotation %q given twice with different values", key)
				}
				if k.Annotations == nil {
					k.Annotations = map[string]string{}
				}
				k.Annotations[key] = val
			}
		case "health_uri":
			err = one(&k.HealthURI)
			if err == nil {
				if herr := checkHealthURI(k.HealthURI); herr != nil {
					return d.Err(herr.Error())
				}
			}
		case "health_interval", "health_timeout":
			dir := d.Val()
			var v string
			if err = one(&v); err != nil {
				return err
			}
			dur, derr := caddy.ParseDuration(v)
			if derr != nil || dur <= 0 {
				return d.Errf("%s %q: want a positive duration", dir, v)
			}
			field := &k.HealthInterval
			if dir == "health_timeout" {
				field = &k.HealthTimeout
			}
			if *field != 0 {
				return d.Errf("%s already specified", dir)
			}
			*field = caddy.Duration(dur)
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
	if k.HealthURI == "" && (k.HealthInterval != 0 || k.HealthTimeout != 0) {
		return d.Err("kubernetes upstreams: health_interval and health_timeout need health_uri")
	}
	return nil
}

// checkHealthURI accepts an absolute path with an optional query.
func checkHealthURI(uri string) error {
	if !strings.HasPrefix(uri, "/") {
		return fmt.Errorf("health_uri %q: want a path starting with /", uri)
	}
	u, err := url.ParseRequestURI(uri)
	if err != nil || u.Host != "" || strings.HasPrefix(uri, "//") {
		return fmt.Errorf("health_uri %q: not a path", uri)
	}
	return nil
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
