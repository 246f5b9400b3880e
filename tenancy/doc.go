// Package tenancy defines the MetricAccess resource, compiles MetricAccess
// objects into per-namespace policies, keeps the tenant registry and loads
// it from its sources (a directory of manifests). The prom_tenancy Caddy app
// ties these together and hands the registry to HTTP handlers.
//
// +groupName=observability.ethos.io
// +versionName=v1alpha1
package tenancy
