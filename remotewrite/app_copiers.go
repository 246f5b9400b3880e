package remotewrite

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/prom-tenant/caddy-prom-tenant/tenancy"
	"github.com/prom-tenant/caddy-prom-tenant/tenancy/v1alpha1"
)

// Start starts a copier for every enabled remote write of the tenants this
// replica owns, then follows the registry and, with leader election, the
// Leases (whose elections it starts, or takes over from the previous
// config). The first sync happens before Start returns, so that a reload
// takes over the running copiers before the old config lets go of them. It
// does no I/O and does not block.
func (a *App) Start() error {
	process.passes.resize(a.MaxInFlight)
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.cancel != nil {
		return nil
	}
	a.held = map[string]*copier{}
	if a.electing {
		for i := range a.LeaderElection.Leases {
			e, err := acquireElection(a.LeaderElection, i, a.kube, a.logger)
			if err != nil {
				a.releaseElectionsLocked()
				return err
			}
			a.elections = append(a.elections, e)
		}
	}
	changed, leases := a.registry.Changed(), leaseChanges.changed()
	a.syncLocked()
	ctx, cancel := context.WithCancel(context.Background())
	a.cancel, a.done = cancel, make(chan struct{})
	go a.follow(ctx, changed, leases, a.done)
	return nil
}

// releaseElectionsLocked lets go of the app's elections; the last config to
// let go of one ends it and releases its Lease. The caller holds a.mu and
// has stopped the copiers.
func (a *App) releaseElectionsLocked() {
	// At once: each release may wait up to renew_deadline for an API
	// server that does not answer.
	var wg sync.WaitGroup
	for i := range a.elections {
		wg.Go(func() { releaseElection(a.LeaderElection, i) })
	}
	wg.Wait()
	a.elections = nil
}

// Stop lets go of the app's copiers; each stops unless the next config holds it.
func (a *App) Stop() error {
	a.mu.Lock()
	cancel, done := a.cancel, a.done
	a.cancel, a.done = nil, nil
	a.mu.Unlock()
	if cancel == nil {
		return nil
	}
	cancel()
	<-done
	a.mu.Lock()
	defer a.mu.Unlock()
	for key := range a.held {
		if _, err := process.copiers.Delete(key); err != nil {
			a.logger.Error("stopping copier", zap.String("copier", key), zap.Error(err))
		}
	}
	a.held = nil
	// After the copiers: an election that ends releases its Lease, and
	// nothing of ours may copy once another replica can take it.
	a.releaseElectionsLocked()
	return nil
}

func (a *App) follow(ctx context.Context, changed, leases <-chan struct{}, done chan struct{}) {
	defer close(done)
	for {
		select {
		case <-ctx.Done():
			return
		case <-changed:
			changed = a.registry.Changed()
		case <-leases:
			leases = leaseChanges.changed()
		}
		a.mu.Lock()
		if ctx.Err() == nil {
			a.syncLocked()
		}
		a.mu.Unlock()
	}
}

// owns reports whether this replica's static shard holds the tenant.
func (a *App) owns(namespace string) bool {
	if a.Shards <= 1 {
		return true
	}
	h := fnv.New32a()
	h.Write([]byte(namespace))
	return int(h.Sum32()%uint32(a.Shards)) == a.Shard
}

// syncLocked makes the held copiers those of the registry's current
// remote writes. The caller holds a.mu.
func (a *App) syncLocked() {
	type wanted struct {
		rw      *tenancy.RemoteWrite
		refused error      // set: the copier only reports it
		term    *leaseTerm // set: the copier runs in this term of its Lease
		standby *election  // set: another replica holds the Lease; the copier only says so
	}
	want := map[string]wanted{}
	for _, t := range a.registry.Tenants() {
		if !a.owns(t.Namespace) {
			continue
		}
		var term *leaseTerm
		suffix := ""
		if a.electing {
			e := a.elections[a.LeaderElection.leaseOf(t.Namespace)]
			lt, leading, _ := e.current()
			if !leading {
				for _, rw := range t.RemoteWrites {
					want[a.copierKey(rw)+"#standby@"+e.lease] = wanted{rw: rw, standby: e}
				}
				continue
			}
			// A new term is a new copier and cursor, which load the
			// progress again: another replica may have copied meanwhile.
			term, suffix = &lt, fmt.Sprintf("#%s@%d", e.lease, lt.n)
		}
		for i, rw := range t.RemoteWrites { // by object name
			if i < a.MaxCopiesPerTenant {
				want[a.copierKey(rw)+suffix] = wanted{rw: rw, term: term}
				continue
			}
			err := fmt.Errorf("not copied: the tenant has %d copying MetricAccess objects, and max_copies_per_tenant is %d (the first by name are copied)",
				len(t.RemoteWrites), a.MaxCopiesPerTenant)
			want[a.copierKey(rw)+"#refused"+suffix] = wanted{rw: rw, refused: err, term: term}
		}
	}
	for key, wc := range want {
		if _, ok := a.held[key]; ok {
			continue
		}
		rw := wc.rw
		v, loaded, err := process.copiers.LoadOrNew(key, func() (caddy.Destructor, error) {
			var c *copier
			switch {
			case wc.standby != nil:
				return newStandbyCopier(rw, a.copyInterval(rw), a.cfg, wc.standby), nil
			case wc.refused != nil:
				c = newRefusedCopier(rw, a.copyInterval(rw), a.cfg, wc.refused)
			default:
				c = newCopier(rw, a.copyInterval(rw), a.cfg, wc.term)
			}
			c.term = wc.term
			c.start()
			return c, nil
		})
		if err != nil {
			a.logger.Error("starting copier", zap.String("copier", key), zap.Error(err))
			continue
		}
		if !loaded && wc.standby == nil {
			a.logger.Info("remote write started", zap.String("tenant", rw.Namespace), zap.String("object", rw.Object.Name))
		}
		a.held[key] = v.(*copier)
	}
	// Replaced copiers stop after their successors exist, so that the
	// object's cursor (progress, counters) passes from one to the other.
	for key := range a.held {
		if _, ok := want[key]; !ok {
			delete(a.held, key)
			if _, err := process.copiers.Delete(key); err != nil {
				a.logger.Error("stopping copier", zap.String("copier", key), zap.Error(err))
			}
		}
	}
}

// copyInterval is the object's interval, or the app's default.
func (a *App) copyInterval(rw *tenancy.RemoteWrite) time.Duration {
	if rw.Spec.Interval != nil && rw.Spec.Interval.Duration > 0 {
		return max(rw.Spec.Interval.Duration, v1alpha1.MinRemoteWriteInterval)
	}
	return time.Duration(a.Interval)
}

// copierKey identifies a copier by its object, what the object says (spec
// and compiled selectors) and the app settings it runs with.
func (a *App) copierKey(rw *tenancy.RemoteWrite) string {
	spec, _ := json.Marshal(rw.Spec) // plain data: cannot fail
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%s\x00%s\x00%s", spec, rw.Policy, a.fingerprint, a.copyInterval(rw))
	return rw.Key() + "@" + hex.EncodeToString(h.Sum(nil)[:8])
}
