package remotewrite

import (
	"context"
	"errors"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// waitersBlocked waits until at least n goroutines are parked inside
// limiter.acquire (waiting for a slot), so that a test acts on waiters that
// really wait. The deadline only guards against a hang; nothing is timed.
func waitersBlocked(t *testing.T, n int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	buf := make([]byte, 1<<20)
	for {
		got := 0
		for g := range strings.SplitSeq(string(buf[:runtime.Stack(buf, true)]), "\n\n") {
			header, _, _ := strings.Cut(g, "\n")
			if strings.Contains(g, "remotewrite.(*limiter).acquire") && strings.Contains(header, "[select") {
				got++
			}
		}
		if got >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d goroutines wait in acquire, want %d", got, n)
		}
		runtime.Gosched()
	}
}

// waitResult returns what a waiting acquire returned. The deadline only
// turns a waiter that is never woken into a failure instead of a hang.
func waitResult(t *testing.T, done <-chan error) error {
	t.Helper()
	select {
	case err := <-done:
		return err
	case <-time.After(30 * time.Second):
		t.Fatal("a waiting acquire was never woken")
		return nil
	}
}

// testCanceledCtx is a context that is done already: acquire with it succeeds only
// if a slot is free at once.
func testCanceledCtx() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}

func TestLimiterBounds(t *testing.T) {
	l := newLimiter(2)
	for i := range 2 {
		if err := l.acquire(testCanceledCtx()); err != nil {
			t.Fatalf("acquire %d of 2: %v", i+1, err)
		}
	}
	if err := l.acquire(testCanceledCtx()); !errors.Is(err, context.Canceled) {
		t.Fatalf("third acquire of 2 = %v, want context.Canceled", err)
	}
	l.release()
	if err := l.acquire(testCanceledCtx()); err != nil {
		t.Fatalf("acquire after a release: %v", err)
	}
	if err := l.acquire(testCanceledCtx()); !errors.Is(err, context.Canceled) {
		t.Fatalf("acquire beyond the size after release and acquire = %v", err)
	}
}

func TestLimiterConcurrency(t *testing.T) {
	const size, workers, rounds = 3, 12, 50
	l := newLimiter(size)
	var running, peak atomic.Int32
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for range rounds {
				if err := l.acquire(context.Background()); err != nil {
					t.Error(err)
					return
				}
				n := running.Add(1)
				for {
					p := peak.Load()
					if n <= p || peak.CompareAndSwap(p, n) {
						break
					}
				}
				runtime.Gosched()
				running.Add(-1)
				l.release()
			}
		})
	}
	wg.Wait()
	if p := peak.Load(); p > size {
		t.Errorf("%d passes ran at once, limit %d", p, size)
	}
	if p := peak.Load(); p < 1 {
		t.Errorf("nothing ran")
	}
	// Every slot is free again.
	for range size {
		if err := l.acquire(testCanceledCtx()); err != nil {
			t.Fatalf("slot not released: %v", err)
		}
	}
}

func TestLimiterReleaseWakesWaiter(t *testing.T) {
	l := newLimiter(1)
	if err := l.acquire(context.Background()); err != nil {
		t.Fatal(err)
	}
	done := make(chan error)
	go func() { done <- l.acquire(context.Background()) }()
	waitersBlocked(t, 1)
	l.release()
	if err := waitResult(t, done); err != nil {
		t.Fatalf("waiter: %v", err)
	}
}

func TestLimiterResizeWakesWaiters(t *testing.T) {
	l := newLimiter(1)
	if err := l.acquire(context.Background()); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 2)
	for range 2 {
		go func() { done <- l.acquire(context.Background()) }()
	}
	waitersBlocked(t, 2)
	l.resize(3) // room for both waiters, with the first holder still running
	for range 2 {
		if err := waitResult(t, done); err != nil {
			t.Fatalf("waiter: %v", err)
		}
	}
	if err := l.acquire(testCanceledCtx()); !errors.Is(err, context.Canceled) {
		t.Errorf("a fourth pass ran with size 3: %v", err)
	}
}

func TestLimiterShrink(t *testing.T) {
	l := newLimiter(3)
	for range 3 {
		if err := l.acquire(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	l.resize(1) // the running passes go on; new ones wait until fewer than 1 run
	done := make(chan error, 1)
	go func() { done <- l.acquire(context.Background()) }()
	waitersBlocked(t, 1)
	l.release()
	l.release()
	waitersBlocked(t, 1) // one pass still runs: size 1 is full
	select {
	case err := <-done:
		t.Fatalf("acquired with 1 running and size 1: %v", err)
	default:
	}
	l.release()
	if err := waitResult(t, done); err != nil {
		t.Fatalf("waiter: %v", err)
	}
}

func TestLimiterAcquireCanceled(t *testing.T) {
	l := newLimiter(1)
	if err := l.acquire(context.Background()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- l.acquire(ctx) }()
	waitersBlocked(t, 1)
	cancel()
	if err := waitResult(t, done); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled waiter = %v, want context.Canceled", err)
	}
	// The cancelled waiter took no slot: after the release, one is free.
	l.release()
	if err := l.acquire(testCanceledCtx()); err != nil {
		t.Errorf("slot lost to a cancelled waiter: %v", err)
	}

	// A deadline ends the wait the same way.
	dctx, dcancel := context.WithTimeout(context.Background(), time.Millisecond)
	defer dcancel()
	if err := l.acquire(dctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("acquire past its deadline = %v, want DeadlineExceeded", err)
	}
}
