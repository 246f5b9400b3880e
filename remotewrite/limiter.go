package remotewrite

import (
	"context"
	"sync"
)

// limiter bounds the copy passes running at once (max_in_flight). Its size
// follows the newest config; copiers kept across a reload share it.
type limiter struct {
	mu      sync.Mutex
	size    int
	running int
	wake    chan struct{} // closed and replaced when a slot frees or size grows
}

func newLimiter(size int) *limiter { return &limiter{size: size, wake: make(chan struct{})} }

func (l *limiter) resize(size int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.size = size
	close(l.wake)
	l.wake = make(chan struct{})
}

func (l *limiter) acquire(ctx context.Context) error {
	for {
		l.mu.Lock()
		if l.running < l.size {
			l.running++
			l.mu.Unlock()
			return nil
		}
		wake := l.wake
		l.mu.Unlock()
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-wake:
		}
	}
}

func (l *limiter) release() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.running--
	close(l.wake)
	l.wake = make(chan struct{})
}

// tenantTurns lets each tenant run one copy pass at a time, so that the
// objects of one tenant (whose target may hang) cannot take every
// max_in_flight slot from the others.
type tenantTurns struct {
	mu    sync.Mutex
	turns map[string]chan struct{} // one slot per namespace; kept, a few bytes each
}

var perTenant = &tenantTurns{turns: map[string]chan struct{}{}}

func (t *tenantTurns) acquire(ctx context.Context, namespace string) error {
	t.mu.Lock()
	turn, ok := t.turns[namespace]
	if !ok {
		turn = make(chan struct{}, 1)
		t.turns[namespace] = turn
	}
	t.mu.Unlock()
	select {
	case turn <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (t *tenantTurns) release(namespace string) {
	t.mu.Lock()
	turn := t.turns[namespace]
	t.mu.Unlock()
	<-turn
}
