package remotewrite

import (
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
)

// An election takes a free Lease, runs a term whose context ends when the
// election does, and releases the Lease on the way out so that another
// replica need not wait for it to expire. A second config of the same
// process shares the election (and its term) instead of campaigning again.
func TestElectionTermAndRelease(t *testing.T) {
	cs := fake.NewClientset()
	le := &LeaderElection{Namespace: "ops", NamePrefix: "test-election", Leases: 1, Identity: "replica-a",
		LeaseDuration: caddy.Duration(3 * time.Second), RenewDeadline: caddy.Duration(2 * time.Second), RetryPeriod: caddy.Duration(100 * time.Millisecond)}
	e, err := acquireElection(le, 0, cs, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	again, err := acquireElection(le, 0, cs, zap.NewNop())
	if err != nil || again != e {
		t.Fatalf("a second config got election %p (%v), want the running %p", again, err, e)
	}
	releaseElection(le, 0) // the second config lets go: the election runs on
	var term leaseTerm
	deadline := time.Now().Add(10 * time.Second)
	for {
		lt, leading, holder := e.current()
		if leading {
			term = lt
			if holder != "replica-a" {
				t.Errorf("holder %q", holder)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the free Lease was not taken")
		}
		time.Sleep(20 * time.Millisecond)
	}
	lease, err := cs.CoordinationV1().Leases("ops").Get(t.Context(), "test-election-0", metav1.GetOptions{})
	if err != nil || lease.Spec.HolderIdentity == nil || *lease.Spec.HolderIdentity != "replica-a" {
		t.Fatalf("Lease %+v, %v", lease, err)
	}
	releaseElection(le, 0) // the last config lets go
	if term.ctx.Err() == nil {
		t.Error("the term goes on after the election ended")
	}
	lease, err = cs.CoordinationV1().Leases("ops").Get(t.Context(), "test-election-0", metav1.GetOptions{})
	if err != nil || (lease.Spec.HolderIdentity != nil && *lease.Spec.HolderIdentity != "") {
		t.Errorf("the Lease is not released: %+v, %v", lease.Spec, err)
	}
}
