// Package tenancy compiles MetricAccess objects (the API types are in
// tenancy/v1alpha1) into per-namespace policies, keeps the tenant registry
// and loads it from its sources (a directory of manifests, the Kubernetes
// API). The prom_tenancy Caddy app ties these together and hands the
// registry to HTTP handlers.
package tenancy
