package tenancy

import (
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/prom-tenant/caddy-prom-tenant/rewrite"
)

// Tenant is a namespace with at least one valid MetricAccess. It is
// immutable once published in a Registry.
type Tenant struct {
	// Namespace is the tenant's identity.
	Namespace string
	// Policy is the union of the selectors of all of the namespace's objects.
	Policy *rewrite.Policy
	// Objects are the MetricAccess objects Policy was compiled from, sorted
	// by name.
	Objects []ObjectRef
	// RemoteWrites are the objects' enabled copies to targets, sorted by
	// object name.
	RemoteWrites []*RemoteWrite
	// Warnings are, by object name, the objects' equality matchers whose
	// values look like regular expressions (see EqualityWarnings).
	Warnings map[string][]string
}

// ObjectRef names one MetricAccess and where it came from.
type ObjectRef struct {
	// Name is metadata.name.
	Name string
	// Source is where the object was read, e.g. a file path.
	Source string
}

// Registry maps namespaces to tenants. Sources replace the whole map at
// once; readers never lock and always see one consistent version. The zero
// value is an empty registry, ready to use.
type Registry struct {
	tenants atomic.Pointer[map[string]*Tenant]

	mu      sync.Mutex    // guards changed
	changed chan struct{} // closed by the next replace; nil until asked for
}

// Changed returns a channel that is closed when the registry next changes.
// Take it before reading the registry, so that no change is missed:
//
//	ch := r.Changed()
//	use(r.Tenants())
//	<-ch
func (r *Registry) Changed() <-chan struct{} {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.changed == nil {
		r.changed = make(chan struct{})
	}
	return r.changed
}

// Lookup returns the tenant of namespace, if the namespace has at least one
// valid MetricAccess. It is safe for concurrent use and never blocks.
func (r *Registry) Lookup(namespace string) (*Tenant, bool) {
	if r == nil {
		return nil, false
	}
	m := r.tenants.Load()
	if m == nil {
		return nil, false
	}
	t, ok := (*m)[namespace]
	return t, ok
}

// Tenants returns all tenants sorted by namespace.
func (r *Registry) Tenants() []*Tenant {
	if r == nil {
		return nil
	}
	m := r.tenants.Load()
	if m == nil {
		return nil
	}
	return slices.SortedFunc(maps.Values(*m), func(a, b *Tenant) int {
		return strings.Compare(a.Namespace, b.Namespace)
	})
}

// replace publishes tenants, which the caller must not modify afterwards.
func (r *Registry) replace(tenants map[string]*Tenant) {
	r.tenants.Store(&tenants)
	r.mu.Lock()
	if r.changed != nil {
		close(r.changed)
		r.changed = nil
	}
	r.mu.Unlock()
}
