package tenancy

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"

	"go.uber.org/zap"
)

// sourcedObject is a valid MetricAccess and where it came from.
type sourcedObject struct {
	obj *MetricAccess
	ref ObjectRef
}

// tenantSet combines the objects of every source into the registry: each
// source publishes its complete current set of valid objects, and the union
// over all sources is compiled per namespace and swapped in at once.
type tenantSet struct {
	registry *Registry
	logger   *zap.Logger

	mu       sync.Mutex                 // serializes publish
	sources  map[string][]sourcedObject // by source name
	compiled map[string]compiledNS      // by namespace, from the last publish
}

// compiledNS is a namespace's compilation, reused while its objects are the
// same (the same decoded objects: sources keep them while unchanged), so a
// change recompiles only its own namespace.
type compiledNS struct {
	objs   []*MetricAccess
	tenant *Tenant
	err    error
}

func newTenantSet(reg *Registry, logger *zap.Logger) *tenantSet {
	return &tenantSet{registry: reg, logger: logger, sources: map[string][]sourcedObject{}, compiled: map[string]compiledNS{}}
}

// publish replaces one source's objects and rebuilds the registry. It returns,
// by namespace, why a namespace's objects compiled to no tenant, and by object
// key, why an object was left out (defined by a source that comes first).
func (s *tenantSet) publish(source string, objs []sourcedObject) (nsErrs map[string]error, dupErrs map[string]error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sources[source] = objs

	nsErrs, dupErrs = map[string]error{}, map[string]error{}
	owner := map[string]ObjectRef{} // object key -> first definition
	byNS := map[string][]*MetricAccess{}
	refs := map[string][]ObjectRef{}
	// Sources in name order ("directory" before "kubernetes"): the first
	// definition of an object wins, deterministically.
	for _, name := range slices.Sorted(maps.Keys(s.sources)) {
		for _, so := range s.sources[name] {
			key := so.obj.Key()
			if first, dup := owner[key]; dup {
				if name == source {
					dupErrs[key] = errDuplicate(key, so.ref, first)
				}
				continue
			}
			owner[key] = so.ref
			byNS[so.obj.Namespace] = append(byNS[so.obj.Namespace], so.obj)
			refs[so.obj.Namespace] = append(refs[so.obj.Namespace], so.ref)
		}
	}
	tenants := make(map[string]*Tenant, len(byNS))
	compiled := make(map[string]compiledNS, len(byNS))
	for ns, objs := range byNS {
		r := refs[ns]
		slices.SortFunc(r, func(a, b ObjectRef) int { return strings.Compare(a.Name, b.Name) })
		slices.SortFunc(objs, func(a, b *MetricAccess) int { return strings.Compare(a.Name, b.Name) })
		c, ok := s.compiled[ns]
		if !ok || !slices.Equal(c.objs, objs) || !slices.Equal(c.tenant.refs(), r) {
			c = compiledNS{objs: objs}
			pol, err := CompileNamespace(ns, objs)
			if err == nil {
				c.tenant = &Tenant{Namespace: ns, Policy: pol, Objects: r, RemoteWrites: remoteWrites(objs, r), Warnings: s.warnings(objs)}
			} else {
				c.err = err
				s.logger.Error("tenant allows nothing; it is not registered", zap.String("namespace", ns), zap.Error(err))
			}
		}
		compiled[ns] = c
		if c.err != nil {
			nsErrs[ns] = c.err
			continue
		}
		tenants[ns] = c.tenant
	}
	s.compiled = compiled
	s.registry.replace(tenants)
	return nsErrs, dupErrs
}

// warnings returns the equality warnings of objs by object name, and logs
// them: a file's objects have no status to carry them.
func (s *tenantSet) warnings(objs []*MetricAccess) map[string][]string {
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

// refs returns the tenant's object references; none for a nil tenant.
func (t *Tenant) refs() []ObjectRef {
	if t == nil {
		return nil
	}
	return t.Objects
}
