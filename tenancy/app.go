package tenancy

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/prom-tenant/caddy-prom-tenant/internal/metricreg"
)

func init() {
	caddy.RegisterModule(new(App))
}

// AppID is the Caddy module ID of the tenancy app.
const AppID = "prom_tenancy"

// App is the prom_tenancy app: it keeps the registry of tenants, loaded
// from its sources, for the prom_tenant handlers. Handlers get it in their
// Provision with ctx.AppIfConfigured("prom_tenancy").
type App struct {
	// Directory loads MetricAccess manifests from a directory.
	Directory *DirectorySource `json:"directory,omitempty"`

	// Kubernetes watches MetricAccess objects through the Kubernetes API.
	// At least one of Directory and Kubernetes is required; with both, the
	// tenants are the union, and an object defined in both is the directory's.
	Kubernetes *KubernetesSource `json:"kubernetes,omitempty"`

	// MaxPatternsPerNamespace caps the patterns of all MetricAccess objects
	// of one namespace together. A namespace over it is no tenant, and each
	// of its objects says why (its Ready condition, the admin API). One
	// object holds at most 256 (MaxPatternsPerObject, the CRD's maxItems).
	// Compiling a namespace costs CPU in its number of patterns, and
	// tenants write them. Default: 1024.
	MaxPatternsPerNamespace int `json:"max_patterns_per_namespace,omitempty"`

	registry *Registry
	tenants  *tenantSet
	logger   *zap.Logger

	mu     sync.Mutex // guards cancel and done
	cancel context.CancelFunc
	done   chan struct{}
}

// CaddyModule returns the Caddy module information.
func (*App) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  AppID,
		New: func() caddy.Module { return new(App) },
	}
}

// Provision loads the sources once, so that the registry is complete before
// any handler serves: it waits for the namespaces' compiles, except those of
// namespaces the running config already serves (a reload), which stay in
// force as they are until their compile finishes. Compiles of unchanged
// namespaces are shared with the running config. A missing directory is an
// error; invalid manifest files are logged and skipped.
func (a *App) Provision(ctx caddy.Context) error {
	a.logger = ctx.Logger()
	if err := metricreg.Register(ctx.GetMetricsRegistry(), collector); err != nil {
		return fmt.Errorf("prom_tenancy: registering metrics: %w", err)
	}
	if a.MaxPatternsPerNamespace == 0 {
		a.MaxPatternsPerNamespace = DefaultMaxPatternsPerNamespace
	}
	a.registry = new(Registry)
	a.tenants = newTenantSet(a.registry, a.logger, a.MaxPatternsPerNamespace)
	a.tenants.fallback = a.servedTenant
	if a.Directory != nil {
		a.Directory.Path = caddy.NewReplacer().ReplaceKnown(a.Directory.Path, "")
		var prev *DirectorySource
		if r := serving(); r != nil && r != a {
			prev = r.Directory
		}
		if err := a.Directory.provision(a.logger.Named("directory"), a.tenants, prev); err != nil {
			return err
		}
	}
	if a.Kubernetes != nil {
		a.Kubernetes.Kubeconfig = caddy.NewReplacer().ReplaceKnown(a.Kubernetes.Kubeconfig, "")
		if err := a.Kubernetes.provision(a.logger.Named("kubernetes"), a.tenants); err != nil {
			return err
		}
	}
	a.tenants.wait(true)
	return nil
}

// servedTenant returns the tenant of ns that the serving config (the one a
// is replacing) serves.
func (a *App) servedTenant(ns string) (*Tenant, bool) {
	r := serving()
	if r == nil || r == a || r.registry == nil {
		return nil, false
	}
	return r.registry.Lookup(ns)
}

// serving returns the prom_tenancy app of the config Caddy serves, or nil:
// for the admin API and the metrics, which outlive configs, and for a new
// config's Provision. Caddy makes a config the active one only once all its
// apps have started, so during a reload this is the old config's app, and it
// stays so when the new config fails to start.
func serving() *App {
	app, err := caddy.ActiveContext().AppIfConfigured(AppID)
	if err != nil {
		return nil
	}
	a, _ := app.(*App)
	return a
}

// Cleanup releases the shared Kubernetes watch, if any, and the compiles.
func (a *App) Cleanup() error {
	if a.tenants != nil {
		a.tenants.close()
	}
	if a.Kubernetes != nil {
		return a.Kubernetes.cleanup()
	}
	return nil
}

// Validate checks the configuration.
func (a *App) Validate() error {
	if a.Directory == nil && a.Kubernetes == nil {
		return errors.New("prom_tenancy: a source is required: directory or kubernetes")
	}
	if a.Directory != nil && a.Directory.ReloadInterval < 0 {
		return errors.New("prom_tenancy: directory: reload_interval must not be negative")
	}
	if a.MaxPatternsPerNamespace < 0 {
		return errors.New("prom_tenancy: max_patterns_per_namespace must be positive")
	}
	return nil
}

// Start starts watching the sources in the background.
func (a *App) Start() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.Kubernetes != nil {
		a.Kubernetes.start()
	}
	if a.Directory == nil || a.cancel != nil {
		return nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	a.cancel, a.done = cancel, make(chan struct{})
	go func(done chan struct{}) {
		defer close(done)
		a.Directory.run(ctx)
	}(a.done)
	return nil
}

// Stop stops watching the sources and waits until it has stopped. The
// registry keeps its last state.
func (a *App) Stop() error {
	a.mu.Lock()
	cancel, done := a.cancel, a.done
	a.cancel, a.done = nil, nil
	a.mu.Unlock()
	if a.Kubernetes != nil {
		a.Kubernetes.stop()
	}
	if cancel != nil {
		cancel()
		<-done
	}
	return nil
}

// ConfiguredRegistry returns the registry of the config's prom_tenancy app,
// provisioning it if need be, for the module `who` that needs tenants.
func ConfiguredRegistry(ctx caddy.Context, who string) (*Registry, error) {
	app, err := ctx.AppIfConfigured(AppID)
	if err != nil {
		return nil, fmt.Errorf("%s needs tenants: configure the %s app (Caddyfile global option `prom_tenancy`): %w", who, AppID, err)
	}
	return app.(*App).Registry(), nil
}

// Registry returns the tenant registry. It is set by Provision and stays
// the same for the app's lifetime; its content follows the sources.
func (a *App) Registry() *Registry { return a.registry }

// Interface guards.
var (
	_ caddy.App          = (*App)(nil)
	_ caddy.Provisioner  = (*App)(nil)
	_ caddy.Validator    = (*App)(nil)
	_ caddy.CleanerUpper = (*App)(nil)
)
