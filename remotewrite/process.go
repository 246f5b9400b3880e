package remotewrite

// Process-wide state: the registries of what outlives one config load.
// Caddy provisions a new App for every config and stops the old one after
// the new one started; a copy must go on across that, so what it runs on
// cannot belong to either App. Everything here is keyed, counted and
// released by the Apps and copiers that use it.
//
// The package's other package-level variables are not state: metrics
// (metrics.go) are collectors created once and registered into each
// config's registry, as Caddy's per-config registries require;
// sampleBuffers (window.go) is a sync.Pool of spare buffers; the err*
// values are sentinel errors.

import (
	"context"
	"sync"

	"github.com/caddyserver/caddy/v2"
	"github.com/prometheus/client_golang/prometheus"
)

var process = struct {
	// copiers holds the running copiers, one per MetricAccess and
	// settings (App.copierKey). A config reload keeps a copier whose
	// object and settings are unchanged: the new config takes it before
	// the old one lets go.
	copiers *caddy.UsagePool
	// cursors holds one cursor per MetricAccess and target, which the
	// copiers of successive configs share (cursor.go).
	cursors *caddy.UsagePool
	// passes bounds the copy passes running at once in the process
	// (max_in_flight): App.Start sizes it to the newest config's, before
	// it starts any copier.
	passes *limiter
	// tenants counts each tenant's copiers and gives the tenant's passes
	// their turns.
	tenants *tenantRegistry
	// elections holds the running leader elections, one per Lease
	// (election.go): a reload keeps the Leases this replica holds, and
	// with them its copiers.
	elections *caddy.UsagePool
}{
	copiers:   caddy.NewUsagePool(),
	cursors:   caddy.NewUsagePool(),
	passes:    newLimiter(0),
	tenants:   &tenantRegistry{byName: map[string]*tenantEntry{}},
	elections: caddy.NewUsagePool(),
}

// tenantRegistry keeps an entry per tenant with a started copier.
type tenantRegistry struct {
	mu     sync.Mutex
	byName map[string]*tenantEntry
}

type tenantEntry struct {
	// copiers is the tenant's started copiers. When the last stops, the
	// entry goes, and so do the tenant's gauges: cardinality stays with
	// the tenants that copy.
	copiers int
	// turn lets the tenant run one copy pass at a time, so that the objects
	// of one tenant (whose target may hang) cannot take every max_in_flight
	// slot from the others.
	turn chan struct{}
}

func (r *tenantRegistry) entry(namespace string) *tenantEntry {
	e := r.byName[namespace]
	if e == nil {
		e = &tenantEntry{turn: make(chan struct{}, 1)}
		r.byName[namespace] = e
	}
	return e
}

// started counts a copier of the tenant that started.
func (r *tenantRegistry) started(namespace string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.entry(namespace).copiers++
}

// stopped counts a copier of the tenant that stopped. The copier holds no
// turn; the tenant's other copiers keep the entry while they wait for one.
func (r *tenantRegistry) stopped(namespace string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	e := r.entry(namespace)
	if e.copiers--; e.copiers <= 0 {
		delete(r.byName, namespace)
		metrics.pending.DeleteLabelValues(namespace)
		metrics.lastSuccess.DeleteLabelValues(namespace)
		metrics.copiers.DeletePartialMatch(prometheus.Labels{"tenant": namespace})
	}
}

// takeTurn waits for the tenant's turn; giveTurn gives it back.
func (r *tenantRegistry) takeTurn(ctx context.Context, namespace string) error {
	r.mu.Lock()
	turn := r.entry(namespace).turn
	r.mu.Unlock()
	select {
	case turn <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (r *tenantRegistry) giveTurn(namespace string) {
	r.mu.Lock()
	turn := r.entry(namespace).turn
	r.mu.Unlock()
	<-turn
}
