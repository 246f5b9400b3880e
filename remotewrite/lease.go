package remotewrite

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"hash/fnv"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"
	"k8s.io/client-go/tools/leaderelection"
)

// LeaderElection makes the proxy's replicas elect, through Kubernetes
// Leases, the one replica that copies each tenant. The tenants are spread
// over a fixed number of Leases (fnv32a(namespace) mod leases); every
// replica runs client-go's leader election for each Lease, and copies the
// tenants of the Leases it holds. It is on by default when the app has
// kubernetes and no static shard is set.
type LeaderElection struct {
	// Disabled turns leader election off, for a single replica or static
	// shards: then every replica copies every tenant its shard owns.
	Disabled bool `json:"disabled,omitempty"`

	// Namespace is where the Leases and the copies' progress (ConfigMaps)
	// live: the proxy's own namespace, which tenants must not be able to
	// write. Default: the pod's namespace, from its service account
	// (/var/run/secrets/kubernetes.io/serviceaccount/namespace), else the
	// POD_NAMESPACE environment variable.
	Namespace string `json:"namespace,omitempty"`

	// NamePrefix starts the names of the Leases (<prefix>-<n>) and the
	// progress ConfigMaps (<prefix>-state-<hash>). Replicas with the same
	// prefix share the tenants; give separate deployments separate prefixes.
	// A new prefix or namespace finds no progress: copies then start from
	// initial_lookback, as after a change of state_dir. Default:
	// prom-tenant-copy.
	NamePrefix string `json:"name_prefix,omitempty"`

	// Leases is the number of Leases the tenants are spread over. One Lease
	// per tenant would be simplest, but every replica polls every Lease each
	// retry_period: a fixed number bounds the API server's load to about
	// leases × replicas / retry_period requests per second, whatever the
	// number of tenants. More Leases let more replicas share the copying.
	// Changing it moves tenants between Leases: do it in a rollout that
	// stops every old replica first. Default: 4.
	Leases int `json:"leases,omitempty"`

	// LeaseDuration is how long the other replicas wait, after the last
	// renewal they saw, before they take a Lease over. Default: 15s.
	LeaseDuration caddy.Duration `json:"lease_duration,omitempty"`

	// RenewDeadline is how long the holder keeps trying to renew before it
	// stops copying; it must be under lease_duration, and the difference
	// (less retry_period) is the margin in which a deposed holder stops
	// sending before another replica may take over. Default: 10s.
	RenewDeadline caddy.Duration `json:"renew_deadline,omitempty"`

	// RetryPeriod is how often each replica tries to acquire or renew each
	// Lease. Default: 2s.
	RetryPeriod caddy.Duration `json:"retry_period,omitempty"`

	// Identity names this replica in the Leases (holderIdentity) and the
	// progress ConfigMaps. It must differ between replicas. Default: the
	// host name (the pod's name) and a random suffix, new for each process.
	Identity string `json:"identity,omitempty"`
}

// serviceAccountNamespace is where a pod reads its namespace.
const serviceAccountNamespace = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"

// defaultIdentity is this process's identity: stable across config
// reloads (a reload keeps its Leases), new after a restart.
var defaultIdentity = sync.OnceValue(func() string {
	host, _ := os.Hostname()
	if host == "" {
		host = "prom-tenant"
	}
	b := make([]byte, 4)
	rand.Read(b)
	return host + "-" + hex.EncodeToString(b)
})

// podNamespace is the pod's namespace, or "".
func podNamespace() string {
	if b, err := os.ReadFile(serviceAccountNamespace); err == nil {
		if ns := strings.TrimSpace(string(b)); ns != "" {
			return ns
		}
	}
	return os.Getenv("POD_NAMESPACE")
}

// provision applies the defaults the fields document.
func (le *LeaderElection) provision() {
	setDefault(&le.Namespace, podNamespace())
	setDefault(&le.NamePrefix, "prom-tenant-copy")
	setDefault(&le.Leases, 4)
	setDefault(&le.LeaseDuration, caddy.Duration(15*time.Second))
	setDefault(&le.RenewDeadline, caddy.Duration(10*time.Second))
	setDefault(&le.RetryPeriod, caddy.Duration(2*time.Second))
	setDefault(&le.Identity, defaultIdentity())
}

// validate checks a provisioned configuration, with client-go's own rules
// for the durations.
func (le *LeaderElection) validate(bad func(format string, args ...any)) {
	if le.Namespace == "" {
		bad("leader_election: no namespace for the Leases: not running in a pod (no %s) and POD_NAMESPACE is not set; set leader_election { namespace <ns> }, or leader_election off for a single replica", serviceAccountNamespace)
	}
	if le.Leases < 1 || le.Leases > 1024 {
		bad("leader_election: leases must be between 1 and 1024, got %d", le.Leases)
	}
	ld, rd, rp := time.Duration(le.LeaseDuration), time.Duration(le.RenewDeadline), time.Duration(le.RetryPeriod)
	if ld < time.Second || rd <= 0 || rp <= 0 {
		bad("leader_election: lease_duration (at least 1s), renew_deadline and retry_period must be positive")
	}
	if ld <= rd {
		bad("leader_election: lease_duration (%s) must be greater than renew_deadline (%s)", ld, rd)
	}
	if rd <= time.Duration(leaderelection.JitterFactor*float64(rp)) {
		bad("leader_election: renew_deadline (%s) must be greater than %g × retry_period (%s)", rd, leaderelection.JitterFactor, rp)
	}
}

// leaseName is the name of Lease i.
func (le *LeaderElection) leaseName(i int) string { return fmt.Sprintf("%s-%d", le.NamePrefix, i) }

// leaseOf is the index of the Lease a tenant's copies belong to.
func (le *LeaderElection) leaseOf(namespace string) int {
	h := fnv.New32a()
	h.Write([]byte(namespace))
	return int(h.Sum32() % uint32(le.Leases))
}
