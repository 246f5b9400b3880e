package remotewrite

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"

	"github.com/prom-tenant/caddy-prom-tenant/internal/kubeclient"
	"github.com/prom-tenant/caddy-prom-tenant/internal/metricreg"
	"github.com/prom-tenant/caddy-prom-tenant/tenancy"
	"github.com/prom-tenant/caddy-prom-tenant/tenancy/v1alpha1"
)

func init() {
	caddy.RegisterModule(new(App))
}

// AppID is the Caddy module ID of the remote-write app.
const AppID = "prom_remote_write"

// userAgent identifies the copier to sources and targets.
const userAgent = "prom-tenant-remote-write"

// App is the prom_remote_write app: for every MetricAccess whose
// remoteWrite is enabled, it copies the series the object allows from the
// source Prometheus to the object's target, each sample once and in order,
// with its original timestamp. It reads the tenants of the prom_tenancy app,
// compiled by the same code as the query path.
type App struct {
	// Source is the base URL of the Prometheus the series are copied from;
	// samples are read by remote read at <source>/api/v1/read. Required.
	Source string `json:"source,omitempty"`

	// SourceTimeout bounds one remote-read request. Default: 1m.
	SourceTimeout caddy.Duration `json:"source_timeout,omitempty"`

	// Interval is the copy interval of a MetricAccess that sets none.
	// Default: 30s; at least 5s.
	Interval caddy.Duration `json:"interval,omitempty"`

	// ReadDelay is how far behind the present copying stays. A sample is
	// stamped with the start of its scrape but stored at its end, so a window
	// closer to the present than the longest scrape (or remote write into the
	// source) could miss samples that arrive late. Default: 30s.
	ReadDelay caddy.Duration `json:"read_delay,omitempty"`

	// InitialLookback is how far back a copier starts that has no saved
	// progress for its target. Default: 5m.
	InitialLookback caddy.Duration `json:"initial_lookback,omitempty"`

	// MaxWindow is the longest time range one pass reads; a copier that is
	// behind (after an outage) catches up window by window. Default: 5m.
	MaxWindow caddy.Duration `json:"max_window,omitempty"`

	// BatchSize is the number of samples per write request. Default: 2000.
	BatchSize int `json:"batch_size,omitempty"`

	// MaxInFlight is the number of copy passes running at once, over all
	// tenants. Default: 4.
	MaxInFlight int `json:"max_in_flight,omitempty"`

	// MaxPendingSamples bounds the samples one window holds in memory; a
	// window with more is read in halves. A copier that is behind reads
	// the next window while it sends one, so it holds up to twice as many.
	// Memory stays bounded whatever the target does: a copier whose target
	// is down keeps no queue, it reads the same window again on the next
	// pass. Default: 500000.
	MaxPendingSamples int `json:"max_pending_samples,omitempty"`

	// MaxCopiesPerTenant bounds the copying MetricAccess objects of one
	// tenant: each copier keeps the series it copied in memory, so a tenant
	// with many objects selecting the same series would multiply that. The
	// objects past it, by name, are not copied, and their status says why.
	// Default: 10.
	MaxCopiesPerTenant int `json:"max_copies_per_tenant,omitempty"`

	// Timeout bounds one write request. Default: 30s.
	Timeout caddy.Duration `json:"timeout,omitempty"`

	// Retries is how often a failed write (5xx, 429, network) is retried
	// with backoff, honouring Retry-After, before the pass gives up; the next
	// pass starts again from the same sample. Default: 3.
	Retries *int `json:"retries,omitempty"`

	// StateDir keeps each copier's progress, so that a restart resumes
	// after the last acknowledged sample. Default: prom_remote_write under
	// Caddy's data directory.
	StateDir string `json:"state_dir,omitempty"`

	// AllowURLs lists the external URLs tenants may write to (remoteWrite
	// url, pushgateway url): a target URL must have the same scheme and host
	// as one of them and a path under its path. Default: none; tenants can
	// then write only to Services of their own namespace.
	AllowURLs []string `json:"allow_urls,omitempty"`

	// ServiceAddress is the address of a tenant's Service when Kubernetes
	// is not set, with the placeholders {service}, {namespace} and {port};
	// the namespace is always the MetricAccess's own, so a template without
	// {namespace} lets tenants reach Services outside their namespace. With
	// Kubernetes set, Services are resolved through the API to their ready
	// Pods instead, and this is not used. Default:
	// {service}.{namespace}.svc:{port}.
	ServiceAddress string `json:"service_address,omitempty"`

	// TenantHeader names a header that remoteWrite requests carry with the
	// tenant's namespace as its value, such as X-Scope-OrgID for a shared
	// Mimir or Cortex, or THANOS-TENANT for Thanos receive. Tenants cannot
	// set it themselves: a MetricAccess whose headers name it is refused.
	// Default: none (tenants' headers are sent as they give them, so on a
	// receiver shared between tenants, set this).
	TenantHeader string `json:"tenant_header,omitempty"`

	// CredentialsDir is the directory that tenant-named files (a password
	// file, TLS files) are resolved under. Default: none, which refuses file
	// credentials: a tenant must not read the proxy's own files.
	CredentialsDir string `json:"credentials_dir,omitempty"`

	// Kubernetes reads basic-auth passwords from Secrets in the tenant's
	// namespace, resolves a target Service to the ready Pods of its selector
	// in the tenant's namespace (never by DNS: ExternalName and selector-less
	// Services are refused), and writes each copier's state into
	// status.remoteWrite of its MetricAccess (objects from the Kubernetes
	// source). Without it, passwordSecret is refused, a Kubernetes
	// object's Service target is refused, and no status is written.
	Kubernetes *KubernetesAccess `json:"kubernetes,omitempty"`

	// Shards and Shard split the tenants among proxy replicas statically,
	// for setups without Kubernetes: this replica copies a tenant iff
	// fnv32a(namespace) mod Shards == Shard. Give each replica its own Shard
	// (a StatefulSet's ordinal) so that every tenant has exactly one
	// copier. Setting them turns off the default leader election; they
	// cannot be combined with a leader_election block. Default: 1 shard,
	// this one.
	Shards int `json:"shards,omitempty"`
	Shard  int `json:"shard,omitempty"`

	// LeaderElection elects, with Kubernetes Leases, the one replica that
	// copies each tenant, and keeps the copies' progress in ConfigMaps every
	// replica can read, so that another replica resumes exactly where a
	// lost one stopped. Default: on with its defaults when Kubernetes is set
	// and Shards is not; off otherwise.
	LeaderElection *LeaderElection `json:"leader_election,omitempty"`

	registry *tenancy.Registry
	cfg      *settings
	// fingerprint keys copiers by the settings they were built with.
	fingerprint string
	logger      *zap.Logger

	kube     kubernetes.Interface // nil without Kubernetes
	electing bool                 // LeaderElection is on

	mu        sync.Mutex
	held      map[string]*copier // by pool key
	elections []*election        // by Lease index, while started
	cancel    context.CancelFunc
	done      chan struct{}
}

// KubernetesAccess configures the Kubernetes client for Secrets, Services
// and status.
type KubernetesAccess struct {
	// Kubeconfig is a kubeconfig file. Default: the in-cluster configuration.
	Kubeconfig string `json:"kubeconfig,omitempty"`
}

// CaddyModule returns the Caddy module information.
func (*App) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  AppID,
		New: func() caddy.Module { return new(App) },
	}
}

// Provision applies the defaults the fields document and builds the source
// and target settings. It touches no network (caddy validate runs it too).
func (a *App) Provision(ctx caddy.Context) error {
	a.logger = ctx.Logger()
	var err error
	if a.registry, err = tenancy.ConfiguredRegistry(ctx, AppID); err != nil {
		return err
	}
	if err := metricreg.Register(ctx.GetMetricsRegistry(), metrics.collectors()...); err != nil {
		return err
	}

	repl := caddy.NewReplacer()
	a.Source = repl.ReplaceKnown(a.Source, "")
	a.StateDir = repl.ReplaceKnown(a.StateDir, "")
	a.CredentialsDir = repl.ReplaceKnown(a.CredentialsDir, "")
	if a.Kubernetes != nil {
		a.Kubernetes.Kubeconfig = repl.ReplaceKnown(a.Kubernetes.Kubeconfig, "")
	}
	// The defaults, as documented on the fields; Caddy runs Validate next.
	setDefault(&a.SourceTimeout, caddy.Duration(time.Minute))
	setDefault(&a.Interval, caddy.Duration(30*time.Second))
	setDefault(&a.ReadDelay, caddy.Duration(30*time.Second))
	setDefault(&a.InitialLookback, caddy.Duration(5*time.Minute))
	setDefault(&a.MaxWindow, caddy.Duration(5*time.Minute))
	setDefault(&a.BatchSize, 2000)
	setDefault(&a.MaxInFlight, 4)
	setDefault(&a.MaxPendingSamples, 500_000)
	setDefault(&a.MaxCopiesPerTenant, 10)
	setDefault(&a.Timeout, caddy.Duration(30*time.Second))
	if a.Retries == nil {
		a.Retries = new(int)
		*a.Retries = 3
	}
	setDefault(&a.StateDir, filepath.Join(caddy.AppDataDir(), AppID))
	setDefault(&a.ServiceAddress, "{service}.{namespace}.svc:{port}")
	setDefault(&a.Shards, 1)

	a.cfg = &settings{
		readDelay:       time.Duration(a.ReadDelay),
		maxWindow:       time.Duration(a.MaxWindow),
		initialLookback: time.Duration(a.InitialLookback),
		batchSize:       a.BatchSize,
		maxPending:      a.MaxPendingSamples,
		stateDir:        a.StateDir,
		passes:          process.passes,
		logger:          a.logger,
	}
	if a.cfg.src, err = newSource(a.Source, time.Duration(a.SourceTimeout), userAgent); err != nil {
		return err
	}
	a.cfg.targets = &targetSettings{
		serviceAddress: a.ServiceAddress,
		credentialsDir: a.CredentialsDir,
		tenantHeader:   a.TenantHeader,
		userAgent:      userAgent,
		timeout:        time.Duration(a.Timeout),
		retries:        *a.Retries,
	}
	for _, raw := range a.AllowURLs {
		if u, err := url.Parse(raw); err == nil { // Validate reports the others
			a.cfg.targets.allowURLs = append(a.cfg.targets.allowURLs, u)
		}
	}
	if a.Kubernetes != nil {
		cfg, err := kubeclient.Config(a.Kubernetes.Kubeconfig, userAgent)
		if err != nil {
			return err
		}
		cs, err := kubernetes.NewForConfig(cfg)
		if err != nil {
			return fmt.Errorf("prom_remote_write: kubernetes: %w", err)
		}
		dyn, err := dynamic.NewForConfig(cfg)
		if err != nil {
			return fmt.Errorf("prom_remote_write: kubernetes: %w", err)
		}
		a.cfg.targets.secrets = newKubeSecrets(cs)
		a.cfg.targets.services = newKubeServices(cs)
		a.cfg.kube = &statusWriter{client: dyn}
		a.kube = cs
	}
	if a.provisionLeaderElection() {
		le := a.LeaderElection
		a.cfg.stores = &kubeStores{client: a.kube.CoreV1(), namespace: le.Namespace, prefix: le.NamePrefix, identity: le.Identity}
	}
	a.fingerprint, err = a.settingsFingerprint()
	return err
}

// provisionLeaderElection decides whether replicas elect their copiers
// and applies leader_election's defaults. Two replicas must never both copy
// a tenant: with Kubernetes, replicas elect a copier unless static shards
// say who copies what. Validate refuses the combinations that make no sense.
func (a *App) provisionLeaderElection() bool {
	if a.LeaderElection == nil && a.Kubernetes != nil && a.Shards <= 1 {
		a.LeaderElection = new(LeaderElection)
	}
	le := a.LeaderElection
	a.electing = le != nil && !le.Disabled && a.Kubernetes != nil && a.Shards <= 1
	if a.electing {
		le.provision()
	}
	return a.electing
}

// setDefault sets *v to def if it is the zero value, which the fields'
// docs and the Caddyfile take as "the default".
func setDefault[T comparable](v *T, def T) {
	var zero T
	if *v == zero {
		*v = def
	}
}

// Validate checks the configuration. Caddy runs it after Provision, which
// applied the defaults.
func (a *App) Validate() error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("prom_remote_write: "+format, args...))
	}
	if a.Source == "" {
		bad("source is required: the base URL of the Prometheus to copy from")
	} else if u, err := url.Parse(a.Source); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		bad("source %q must be an http or https URL", a.Source)
	}
	if time.Duration(a.Interval) < v1alpha1.MinRemoteWriteInterval {
		bad("interval must be at least %s, got %s", v1alpha1.MinRemoteWriteInterval, time.Duration(a.Interval))
	}
	for name, d := range map[string]caddy.Duration{"read_delay": a.ReadDelay, "initial_lookback": a.InitialLookback, "max_window": a.MaxWindow, "timeout": a.Timeout, "source_timeout": a.SourceTimeout} {
		if d < 0 {
			bad("%s must not be negative, got %s", name, time.Duration(d))
		}
	}
	if time.Duration(a.MaxWindow) < time.Second {
		bad("max_window must be at least 1s, got %s", time.Duration(a.MaxWindow))
	}
	for name, n := range map[string]int{"batch_size": a.BatchSize, "max_in_flight": a.MaxInFlight, "max_pending_samples": a.MaxPendingSamples, "max_copies_per_tenant": a.MaxCopiesPerTenant, "shards": a.Shards} {
		if n < 0 {
			bad("%s must be positive, got %d", name, n)
		}
	}
	if a.BatchSize > 0 && a.MaxPendingSamples > 0 && a.MaxPendingSamples < a.BatchSize {
		bad("max_pending_samples (%d) must be at least batch_size (%d)", a.MaxPendingSamples, a.BatchSize)
	}
	if a.Retries != nil && *a.Retries < 0 {
		bad("retries must not be negative, got %d", *a.Retries)
	}
	if shards := max(a.Shards, 1); a.Shard < 0 || a.Shard >= shards {
		bad("shard must be in [0, %d), got %d", shards, a.Shard)
	}
	if le := a.LeaderElection; le != nil && !le.Disabled {
		switch {
		case a.Kubernetes == nil:
			bad("leader_election needs kubernetes: the Leases and the copies' progress live in the API; without it, split the tenants with shard <index> <count>")
		case a.Shards > 1:
			bad("shard and leader_election exclude each other: leader election decides which replica copies a tenant; remove shard, or set leader_election off")
		default:
			le.validate(bad)
		}
	}
	for _, raw := range a.AllowURLs {
		u, err := url.Parse(raw)
		switch {
		case err != nil:
			bad("allow_url %q: %v", raw, err)
		case u.Scheme != "http" && u.Scheme != "https", u.Host == "":
			bad("allow_url %q must be an http or https URL with a host", raw)
		case u.User != nil, u.RawQuery != "", u.Fragment != "":
			bad("allow_url %q must have no user info, query or fragment", raw)
		}
	}
	return errors.Join(errs...)
}

// settingsFingerprint hashes every setting a copier is built from: a change
// of any of them replaces the copiers on reload. max_in_flight and the
// shard assignment are not among them (they decide which copiers run and
// how many passes at once, not how one copies), nor the default interval,
// which keys only the copiers that use it.
func (a *App) settingsFingerprint() (string, error) {
	var fields map[string]any
	b, err := json.Marshal(a)
	if err == nil {
		err = json.Unmarshal(b, &fields)
	}
	if err != nil {
		return "", err
	}
	delete(fields, "interval") // in copierKey as each copier's own interval
	delete(fields, "max_in_flight")
	delete(fields, "max_copies_per_tenant") // in copierKey, for the refused ones
	delete(fields, "shards")
	delete(fields, "shard")
	delete(fields, "leader_election")              // in copierKey, as the Lease and its term
	if b, err = json.Marshal(fields); err != nil { // keys sorted
		return "", err
	}
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:8]), nil
}

// Interface guards.
var (
	_ caddy.App         = (*App)(nil)
	_ caddy.Provisioner = (*App)(nil)
	_ caddy.Validator   = (*App)(nil)
)
