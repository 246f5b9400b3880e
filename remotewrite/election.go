package remotewrite

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
)

// election runs client-go's leader election for one Lease, for as long as
// some config uses it (process.elections: a reload keeps it, and with it
// the lease and the copiers). Each time this replica acquires the Lease a
// term begins; its context is cancelled the moment client-go gives up
// renewing, and every copier of the term runs under it, so a deposed
// replica stops sending at once, writes in flight included.
//
// Why that is in time: the holder gives up after renew_deadline without a
// successful renewal, which began at most retry_period after the last one;
// another replica takes over only lease_duration after it saw that last
// renewal. With the defaults that leaves about 3s (15 - 10 - 2) in which
// the deposed copiers stop, with clocks that run at the same rate (client-go
// compares no clocks across machines). The progress ConfigMaps fence what
// that cannot cover (a paused process): see store_kube.go.
//
// ReleaseOnCancel is not used: client-go releases after its renew loop
// ends, before it cancels the term's context, so a lost Lease would keep
// the term alive for up to another renew_deadline while the release is
// tried. The Lease is released here instead, when the election ends (the
// last config let go of it) and the copiers have stopped, so that another
// replica takes over at once on a graceful shutdown.
type election struct {
	lease     string // namespace/name, for logs
	namespace string
	name      string
	identity  string
	client    kubernetes.Interface
	timings   atomic.Pointer[LeaderElection] // the newest config's; read at each new term
	logger    *zap.Logger

	mu      sync.Mutex
	term    uint64
	termCtx context.Context // the current term's, or a cancelled one
	holder  string          // last seen holder of the Lease

	cancel context.CancelFunc
	done   chan struct{}
}

// leaseTerm is one term of an election: the copiers of the Lease's
// tenants that this replica runs while it holds it.
type leaseTerm struct {
	e   *election
	n   uint64
	ctx context.Context // cancelled when the Lease is lost or let go
}

// leaseChanges wakes the apps when a Lease is won or lost, to start or
// stop the copiers of its tenants.
var leaseChanges = &broadcast{ch: make(chan struct{})}

// broadcast is a channel closed (and replaced) on every change.
type broadcast struct {
	mu sync.Mutex
	ch chan struct{}
}

func (b *broadcast) changed() <-chan struct{} {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.ch
}

func (b *broadcast) notify() {
	b.mu.Lock()
	defer b.mu.Unlock()
	close(b.ch)
	b.ch = make(chan struct{})
}

// acquireElection returns the running election of Lease i, starting it
// if no config runs it yet; release it with releaseElection.
func acquireElection(le *LeaderElection, i int, client kubernetes.Interface, logger *zap.Logger) (*election, error) {
	name := le.leaseName(i)
	v, _, err := process.elections.LoadOrNew(electionKey(le, name), func() (caddy.Destructor, error) {
		e := &election{
			lease: le.Namespace + "/" + name, namespace: le.Namespace, name: name, identity: le.Identity,
			client: client, logger: logger.With(zap.String("lease", le.Namespace+"/"+name)),
			termCtx: cancelledCtx, done: make(chan struct{}),
		}
		e.timings.Store(le)
		metrics.leaseHeld.WithLabelValues(e.lease).Set(0)
		var ctx context.Context
		ctx, e.cancel = context.WithCancel(context.Background())
		go e.run(ctx)
		return e, nil
	})
	if err != nil {
		return nil, err
	}
	e := v.(*election)
	e.timings.Store(le) // changed durations apply from the next term
	return e, nil
}

func releaseElection(le *LeaderElection, i int) {
	_, _ = process.elections.Delete(electionKey(le, le.leaseName(i)))
}

func electionKey(le *LeaderElection, name string) string {
	return le.Namespace + "/" + name + "\x00" + le.Identity
}

var cancelledCtx = func() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}()

// current is the running term, or ok false when this replica does not hold
// the Lease; holder is who does, as last seen.
func (e *election) current() (t leaseTerm, ok bool, holder string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return leaseTerm{e: e, n: e.term, ctx: e.termCtx}, e.termCtx.Err() == nil, e.holder
}

// lastHolder is the holder of the Lease, as last seen.
func (e *election) lastHolder() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.holder
}

func (e *election) lock() *resourcelock.LeaseLock {
	return &resourcelock.LeaseLock{
		LeaseMeta:  metav1.ObjectMeta{Namespace: e.namespace, Name: e.name},
		Client:     e.client.CoordinationV1(),
		LockConfig: resourcelock.ResourceLockConfig{Identity: e.identity},
		Labels:     map[string]string{managedByLabel: managedByValue},
	}
}

// run campaigns until ctx ends: client-go's Run returns when a term ends,
// and the next campaign starts at once.
func (e *election) run(ctx context.Context) {
	defer close(e.done)
	for ctx.Err() == nil {
		t := e.timings.Load()
		le, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
			Lock:          e.lock(),
			LeaseDuration: time.Duration(t.LeaseDuration),
			RenewDeadline: time.Duration(t.RenewDeadline),
			RetryPeriod:   time.Duration(t.RetryPeriod),
			Name:          e.lease,
			Callbacks: leaderelection.LeaderCallbacks{
				OnStartedLeading: e.started,
				OnStoppedLeading: func() {},
				OnNewLeader:      e.observed,
			},
		})
		if err != nil { // Validate applied client-go's rules
			e.logger.Error("leader election not started", zap.Error(err))
			return
		}
		le.Run(ctx)
	}
}

// started begins a term. client-go calls it in a goroutine of its own, so
// it may come after the term has already ended.
func (e *election) started(ctx context.Context) {
	e.mu.Lock()
	if ctx.Err() != nil {
		e.mu.Unlock()
		return
	}
	e.term++
	e.termCtx, e.holder = ctx, e.identity
	e.mu.Unlock()
	e.logger.Info("lease acquired: copying its tenants here")
	metrics.leaseHeld.WithLabelValues(e.lease).Set(1)
	leaseChanges.notify()
	context.AfterFunc(ctx, func() {
		e.mu.Lock()
		if e.termCtx == ctx && e.holder == e.identity {
			e.holder = "" // not known until the next campaign sees the Lease
		}
		e.mu.Unlock()
		e.logger.Warn("lease lost or let go: its tenants' copiers stop here")
		metrics.leaseHeld.WithLabelValues(e.lease).Set(0)
		leaseChanges.notify()
	})
}

func (e *election) observed(identity string) {
	e.mu.Lock()
	e.holder = identity
	e.mu.Unlock()
	leaseChanges.notify() // the status shows the holder
}

// Destruct ends the election when the last config let go of it, after the
// configs stopped their copiers, and releases the Lease if this replica
// holds it, so that another takes over without waiting lease_duration.
func (e *election) Destruct() error {
	e.cancel()
	<-e.done
	metrics.leaseHeld.DeleteLabelValues(e.lease)
	e.mu.Lock()
	wasLeading := e.term > 0
	e.mu.Unlock()
	if !wasLeading {
		return nil // never held it
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(e.timings.Load().RenewDeadline))
	defer cancel()
	lock := e.lock()
	rec, _, err := lock.Get(ctx)
	if err != nil || rec.HolderIdentity != e.identity {
		return nil
	}
	// As client-go releases: no holder, and a lease of 1s.
	now := metav1.NewTime(time.Now())
	if err := lock.Update(ctx, resourcelock.LeaderElectionRecord{
		LeaderTransitions: rec.LeaderTransitions, LeaseDurationSeconds: 1, RenewTime: now, AcquireTime: now,
	}); err != nil {
		e.logger.Warn("releasing the lease; another replica takes over when it expires", zap.Error(err))
		return nil
	}
	e.logger.Info("lease released")
	return nil
}
