// Package kubewatch runs client-go informers and turns their events into
// passes: one after the first full list of every informer, then one after
// each change, one at a time, bursts folded into one. The tenancy source
// and the upstream discovery both watch this way.
package kubewatch

import (
	"context"
	"sync"

	"k8s.io/client-go/tools/cache"
)

// Loop is a set of informers and the pass loop over them. Create it with
// New, Add the informers, then Start; Stop ends everything.
type Loop struct {
	ctx       context.Context
	cancel    context.CancelFunc
	informers []cache.SharedIndexInformer
	kick      chan struct{} // coalesced "something changed"
	startOnce sync.Once
}

// New returns a Loop that has not started.
func New() *Loop {
	ctx, cancel := context.WithCancel(context.Background())
	return &Loop{ctx: ctx, cancel: cancel, kick: make(chan struct{}, 1)}
}

// Add registers an informer whose events ask for a pass. Call it before Start.
func (l *Loop) Add(inf cache.SharedIndexInformer) error {
	_, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { l.Changed() },
		UpdateFunc: func(any, any) { l.Changed() },
		DeleteFunc: func(any) { l.Changed() },
	})
	if err != nil {
		return err
	}
	l.informers = append(l.informers, inf)
	return nil
}

// Informers returns the informers, whose stores a pass reads.
func (l *Loop) Informers() []cache.SharedIndexInformer { return l.informers }

// Context is cancelled by Stop: work that belongs to the watch uses it.
func (l *Loop) Context() context.Context { return l.ctx }

// Changed asks for another pass; if one is already due, it sees this change too.
func (l *Loop) Changed() {
	select {
	case l.kick <- struct{}{}:
	default:
	}
}

// Start runs the informers and, in the background, calls pass(true) once
// every informer has listed, then pass(false) after each change. Only the
// first call does anything; it does not wait.
func (l *Loop) Start(pass func(first bool)) {
	l.startOnce.Do(func() {
		for _, inf := range l.informers {
			go inf.Run(l.ctx.Done())
		}
		go l.run(pass)
	})
}

func (l *Loop) run(pass func(first bool)) {
	for _, inf := range l.informers {
		if !cache.WaitForCacheSync(l.ctx.Done(), inf.HasSynced) {
			return
		}
	}
	pass(true)
	for {
		select {
		case <-l.ctx.Done():
			return
		case <-l.kick:
			pass(false)
		}
	}
}

// Stop stops the informers and the pass loop.
func (l *Loop) Stop() { l.cancel() }
