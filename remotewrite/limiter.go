package remotewrite

import (
	"context"
	"sync"
)

// limiter bounds the copy passes running at once (max_in_flight). Its size
// follows the newest config; copiers kept across a reload share it
// (process.passes).
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
