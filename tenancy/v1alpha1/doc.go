// Package v1alpha1 is the observability.ethos.io/v1alpha1 API: the
// MetricAccess resource, its generated deepcopy code, and the checks that
// belong to the types (Validate, EqualityWarnings, ParsePattern: what a
// pattern means). The CRD in deploy/kubernetes/crd is generated from it
// (make generate). Compiling objects into policies, the tenant registry
// and the sources live in the parent package, tenancy.
//
// +groupName=observability.ethos.io
// +kubebuilder:object:generate=true
package v1alpha1
