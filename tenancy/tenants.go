package tenancy

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"

	"go.uber.org/zap"

	"github.com/prom-tenant/caddy-prom-tenant/tenancy/v1alpha1"
)

// sourcedObject is a valid MetricAccess and where it came from.
type sourcedObject struct {
	obj *v1alpha1.MetricAccess
	ref ObjectRef
}

// tenantSet combines the objects of every source into the registry: each
// source publishes its complete current set of valid objects, and the union
// over all sources is grouped per namespace. Each namespace compiles on its
// own, in the background (compilejobs.go), so that a namespace that takes
// long to compile holds up neither the sources nor any other namespace:
// publish never compiles, and the registry is swapped in at once whenever a
// namespace's compile finishes.
type tenantSet struct {
	registry *Registry
	logger   *zap.Logger
	// maxPatterns caps the patterns of one namespace (App.MaxPatternsPerNamespace).
	maxPatterns int
	// fallback returns the tenant the running config serves for a namespace,
	// kept in force by a new config while it compiles the same namespace.
	fallback func(ns string) (*Tenant, bool)

	mu        sync.Mutex                 // guards the fields below
	sources   map[string][]sourcedObject // by source name
	nss       map[string]*nsState        // by namespace, from the last publish
	listeners []func()                   // told when a namespace's compile has finished
	closed    bool
}

// nsState is one namespace: its current objects, the compile of them, and
// the tenant in force.
type nsState struct {
	objs []*v1alpha1.MetricAccess // sorted by name
	refs []ObjectRef              // sorted by name
	key  string                   // of job; "" when the objects are not compiled (over the cap)
	job  *compileJob
	// tenant is in force: the compiled current objects, or, while job
	// runs, the namespace's previous tenant; nil for none.
	tenant *Tenant
	// err says why the current objects are not in force.
	err error
	// applied: tenant and err are the outcome of the current objects.
	applied bool
	// settled is closed once the outcome of the current objects is
	// applied and the listeners are told; nil when they are.
	settled chan struct{}
}

// settle closes st.settled, if any: its waiters look again.
func (st *nsState) settle() {
	if st.settled != nil {
		close(st.settled)
		st.settled = nil
	}
}

// compiling reports whether the namespace's current objects are still compiling.
func (n *nsState) compiling() bool { return n.job != nil && !n.job.finished() }

// publishResult says, after a publish, what is not (yet) in force.
type publishResult struct {
	// nsErrs: why a namespace's objects are not in force: over the pattern
	// cap, or they allow nothing.
	nsErrs map[string]error
	// dupErrs: by object key, why an object of the publishing source was
	// left out (defined by a source that comes first).
	dupErrs map[string]error
	// compiling: namespaces whose current objects are still compiling;
	// their previous tenant, if any, is in force meanwhile.
	compiling map[string]bool
}

func newTenantSet(reg *Registry, logger *zap.Logger, maxPatterns int) *tenantSet {
	return &tenantSet{registry: reg, logger: logger, maxPatterns: maxPatterns,
		sources: map[string][]sourcedObject{}, nss: map[string]*nsState{}}
}

// onCompiled registers f, called (without locks held) each time one of
// the set's namespaces has finished compiling, so that sources can report
// the outcome.
func (s *tenantSet) onCompiled(f func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.listeners = append(s.listeners, f)
}

// publish replaces one source's objects, starts compiling each namespace
// whose objects changed, and updates the registry. It does not wait for
// any compile.
func (s *tenantSet) publish(source string, objs []sourcedObject) publishResult {
	s.mu.Lock()
	defer s.mu.Unlock()
	res := publishResult{nsErrs: map[string]error{}, dupErrs: map[string]error{}, compiling: map[string]bool{}}
	if s.closed {
		return res // the config is gone: start no compile it would never release
	}
	s.sources[source] = objs

	owner := map[string]ObjectRef{} // object key -> first definition
	byNS := map[string][]*v1alpha1.MetricAccess{}
	refs := map[string][]ObjectRef{}
	// Sources in name order ("directory" before "kubernetes"): the first
	// definition of an object wins, deterministically.
	for _, name := range slices.Sorted(maps.Keys(s.sources)) {
		for _, so := range s.sources[name] {
			key := so.obj.Key()
			if first, dup := owner[key]; dup {
				if name == source {
					res.dupErrs[key] = errDuplicate(key, so.ref, first)
				}
				continue
			}
			owner[key] = so.ref
			byNS[so.obj.Namespace] = append(byNS[so.obj.Namespace], so.obj)
			refs[so.obj.Namespace] = append(refs[so.obj.Namespace], so.ref)
		}
	}
	for ns, st := range s.nss {
		if _, ok := byNS[ns]; !ok {
			releaseCompile(st.key) // gone: its access ends now, compiled or not
			st.settle()
			delete(s.nss, ns)
		}
	}
	for ns, objs := range byNS {
		r := refs[ns]
		slices.SortFunc(r, func(a, b ObjectRef) int { return strings.Compare(a.Name, b.Name) })
		slices.SortFunc(objs, func(a, b *v1alpha1.MetricAccess) int { return strings.Compare(a.Name, b.Name) })
		st := s.nss[ns]
		if st == nil {
			st = &nsState{}
			s.nss[ns] = st
		} else if slices.Equal(st.objs, objs) && slices.Equal(st.refs, r) {
			continue // the same decoded objects: sources keep them while unchanged
		}
		st.objs, st.refs, st.applied = objs, r, false
		s.update(ns, st)
	}
	for ns, st := range s.nss {
		switch {
		case st.err != nil:
			res.nsErrs[ns] = st.err
		case st.compiling():
			res.compiling[ns] = true
		}
	}
	s.swap()
	return res
}

// update compiles st's current objects: at once when the same objects are
// compiled already (in this config or another), else in the background.
func (s *tenantSet) update(ns string, st *nsState) {
	if n := countPatterns(st.objs); n > s.maxPatterns {
		// Over the cap: not compiled at all, and nothing stays in force, so
		// that what the namespace holds now is never exceeded.
		releaseCompile(st.key)
		st.settle()
		st.key, st.job, st.tenant, st.applied = "", nil, nil, true
		st.err = errTooManyPatterns(ns, n, s.maxPatterns)
		s.logger.Error("tenant has too many patterns; it is not registered", zap.String("namespace", ns), zap.Error(st.err))
		return
	}
	st.err = nil
	key := compileKey(ns, st.objs)
	if key != st.key {
		job := acquireCompile(key, ns, st.objs)
		releaseCompile(st.key)
		st.key, st.job = key, job
		st.settle()
		if !job.finished() {
			st.settled = make(chan struct{})
			go s.await(ns, job)
		}
	}
	if !st.job.finished() {
		if st.tenant == nil && s.fallback != nil {
			st.tenant, _ = s.fallback(ns)
		}
		return
	}
	s.apply(ns, st)
}

// apply puts the outcome of st's finished compile in force.
func (s *tenantSet) apply(ns string, st *nsState) {
	st.applied = true
	if err := st.job.err; err != nil {
		s.logger.Error("tenant allows nothing; it is not registered", zap.String("namespace", ns), zap.Error(err))
		st.tenant, st.err = nil, err
		return
	}
	st.tenant = &Tenant{Namespace: ns, Policy: st.job.pol, Objects: st.refs, RemoteWrites: remoteWrites(st.objs, st.refs), Warnings: s.warnings(st.objs)}
	st.err = nil
}

// await puts job's outcome in force once it has finished, unless the
// namespace has moved on to other objects meanwhile, and tells the listeners.
func (s *tenantSet) await(ns string, job *compileJob) {
	<-job.done
	s.mu.Lock()
	st := s.nss[ns]
	if st == nil || st.job != job || s.closed {
		s.mu.Unlock()
		return
	}
	if !st.applied {
		s.apply(ns, st)
		s.swap()
	}
	settled := st.settled
	st.settled = nil
	listeners := slices.Clone(s.listeners)
	s.mu.Unlock()
	for _, f := range listeners {
		f()
	}
	if settled != nil {
		close(settled)
	}
}

// swap publishes the tenants in force. Callers hold s.mu.
func (s *tenantSet) swap() {
	tenants := make(map[string]*Tenant, len(s.nss))
	for ns, st := range s.nss {
		if st.tenant != nil {
			tenants[ns] = st.tenant
		}
	}
	s.registry.replace(tenants)
}

// errors returns, by namespace, why its current objects are not in force:
// over the pattern cap, or they allow nothing.
func (s *tenantSet) errors() map[string]error {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]error{}
	for ns, st := range s.nss {
		if st.err != nil {
			out[ns] = st.err
		}
	}
	return out
}

// compilingNamespaces returns the namespaces whose current objects are
// still compiling.
func (s *tenantSet) compilingNamespaces() map[string]bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]bool{}
	for ns, st := range s.nss {
		if st.compiling() {
			out[ns] = true
		}
	}
	return out
}

// wait waits until the outcome of every namespace's current objects is in
// the registry and the listeners are told; with unservedOnly, only of the
// namespaces that have no tenant in force meanwhile.
func (s *tenantSet) wait(unservedOnly bool) {
	for {
		s.mu.Lock()
		var pending []chan struct{}
		for _, st := range s.nss {
			if st.settled != nil && (!unservedOnly || st.tenant == nil) {
				pending = append(pending, st.settled)
			}
		}
		s.mu.Unlock()
		if len(pending) == 0 {
			return
		}
		for _, ch := range pending {
			<-ch
		}
	}
}

// waitNamespace waits until the outcome of ns's current objects is in the
// registry and the listeners are told.
func (s *tenantSet) waitNamespace(ns string) {
	for {
		s.mu.Lock()
		var ch chan struct{}
		if st := s.nss[ns]; st != nil {
			ch = st.settled
		}
		s.mu.Unlock()
		if ch == nil {
			return
		}
		<-ch
	}
}

// close releases the set's compiles; the registry keeps its last state.
func (s *tenantSet) close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	for _, st := range s.nss {
		releaseCompile(st.key)
		st.key = ""
		st.settle()
	}
}

// countPatterns returns the number of patterns of objs together.
func countPatterns(objs []*v1alpha1.MetricAccess) int {
	n := 0
	for _, o := range objs {
		n += len(o.Spec.Metrics)
	}
	return n
}

// warnings returns the equality warnings of objs by object name, and logs
// them: a file's objects have no status to carry them.
func (s *tenantSet) warnings(objs []*v1alpha1.MetricAccess) map[string][]string {
	var out map[string][]string
	for _, o := range objs {
		if w := o.EqualityWarnings(); len(w) > 0 {
			if out == nil {
				out = map[string][]string{}
			}
			out[o.Name] = w
			s.logger.Warn("MetricAccess matches a regex-like value literally", zap.String("object", o.Key()), zap.Strings("warnings", w))
		}
	}
	return out
}

func errDuplicate(key string, dup, first ObjectRef) error {
	return fmt.Errorf("%s from %s is also defined by %s, which wins", key, dup.Source, first.Source)
}
