// Package kubeauth authenticates requests by their Kubernetes bearer token
// and authorizes the tenant namespace they ask for, for a public ingress in
// front of prom_tenant.
//
// For each request it
//
//  1. reads `Authorization: Bearer <token>` (missing or malformed → 401);
//  2. reviews the token with a TokenReview (authentication.k8s.io/v1)
//     (not authenticated → 401);
//  3. reads the requested namespace from ONE place, the `namespace`
//     placeholder (default {http.request.header.X-Tenant-Namespace}); if it
//     is empty and the token is a ServiceAccount's
//     (system:serviceaccount:<ns>:<name>), the ServiceAccount's own
//     namespace is used;
//  4. checks with a SubjectAccessReview (authorization.k8s.io/v1) that the
//     user (name, uid, groups and extra from the TokenReview) may perform the
//     configured resource attributes in that namespace (default: get
//     pods.metrics.k8s.io, as OpenShift's tenancy port) (denied → 403 naming
//     the missing permission);
//  5. hands the authorized namespace on: the var prom_tenant.namespace
//     ({http.vars.prom_tenant.namespace}), the placeholders
//     {http.auth.user.id} (the user name) and {http.auth.user.namespace}, and,
//     when the namespace placeholder is a request header, that header is
//     overwritten with the authorized value. So prom_tenant's default tenant
//     placeholder reads exactly what was authorized; the explicit form is
//     `prom_tenant { tenant {http.vars.prom_tenant.namespace} }`, which is
//     required when a ServiceAccount defaults to its own namespace with a
//     non-header namespace placeholder. The Authorization header is removed,
//     so the tenant's token never reaches the upstream.
//
// An API server error or timeout is a 503: it fails closed. Every refusal
// uses Prometheus's JSON error envelope. Both reviews are cached, keyed by a
// keyed hash (HMAC-SHA256 with a per-process random key) of the token, never
// the token itself; allowing answers for cache_ttl (default 30s), denying
// ones for denied_cache_ttl (default 5s), at most cache_max_entries (default
// 10000) per cache, least recently used first out. Tokens are never logged.
//
// Caddyfile:
//
//	authenticate_kubernetes {
//	    kubeconfig <path>                 # default: in-cluster
//	    namespace  <placeholder>          # default {http.request.header.X-Tenant-Namespace}
//	    resource_attributes {             # default: get pods.metrics.k8s.io
//	        verb get
//	        group metrics.k8s.io
//	        resource pods
//	    }
//	    cache_ttl 30s
//	}
//	prom_tenant {
//	    tenant {http.vars.prom_tenant.namespace}
//	}
//
// The directive is ordered after basic_auth, hence before prom_tenant and
// reverse_proxy. The proxy's own identity needs `create` on tokenreviews and
// subjectaccessreviews: bind it to the ClusterRole system:auth-delegator.
//
// Two modules share the code. The handler http.handlers.authenticate_kubernetes
// (the Caddyfile directive) is the one to use: it answers 401, 403 and 503
// each in the envelope. The provider http.authentication.providers.kubernetes
// plugs into Caddy's `authentication` handler (JSON only; Caddy has no
// Caddyfile directive for arbitrary providers), but that handler turns every
// failure, provider errors included, into a bare 401, so it cannot say 403 or
// 503 nor use the envelope.
package kubeauth
