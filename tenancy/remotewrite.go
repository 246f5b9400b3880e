package tenancy

import (
	"github.com/prom-tenant/caddy-prom-tenant/rewrite"
	"github.com/prom-tenant/caddy-prom-tenant/tenancy/v1alpha1"
)

// RemoteWrite is one MetricAccess's copy of its series to a target. The
// prom_remote_write app runs one copier for each.
type RemoteWrite struct {
	// Namespace is the tenant.
	Namespace string
	// Object is the MetricAccess the copy belongs to.
	Object ObjectRef
	// Spec is a deep copy of the object's spec.remoteWrite; Enabled is true.
	Spec *v1alpha1.RemoteWriteSpec
	// Policy is the object's own selectors, compiled by the same code as
	// the tenant's policy, of which it is a part: a copy never holds a
	// series the tenant could not query.
	Policy *rewrite.Policy
}

// Key is namespace/name of the object.
func (r *RemoteWrite) Key() string { return r.Namespace + "/" + r.Object.Name }

// remoteWrites compiles the enabled remote writes of objs; refs are their
// references at the same index (both are sorted by name, names are unique). An object whose own selectors allow nothing has
// nothing to copy and is left out.
func remoteWrites(objs []*v1alpha1.MetricAccess, refs []ObjectRef) []*RemoteWrite {
	var out []*RemoteWrite
	for i, o := range objs {
		if o.Spec.RemoteWrite == nil || !o.Spec.RemoteWrite.Enabled {
			continue
		}
		sels, err := selectors(o)
		if err != nil {
			continue // unreachable: the namespace compiled from the same selectors
		}
		p, err := rewrite.NewPolicy(sels)
		if err != nil {
			continue
		}
		out = append(out, &RemoteWrite{Namespace: o.Namespace, Object: refs[i], Spec: o.Spec.RemoteWrite.DeepCopy(), Policy: p})
	}
	return out
}
