// Package promtenant is the prom_tenant Caddy HTTP handler: it identifies the
// tenant of a request to the Prometheus HTTP API, rewrites the request so it
// can only select the series the tenant's MetricAccess resources allow, and
// hands it on to reverse_proxy. Importing it registers every prom-tenant
// module (imports.go).
package promtenant

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/prometheus/prometheus/promql/parser"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/prom-tenant/caddy-prom-tenant/internal/metricreg"
	"github.com/prom-tenant/caddy-prom-tenant/internal/promapi"
	"github.com/prom-tenant/caddy-prom-tenant/rewrite"
	"github.com/prom-tenant/caddy-prom-tenant/tenancy"
)

func init() {
	caddy.RegisterModule(Handler{})
}

// Interface guards.
var (
	_ caddy.Provisioner           = (*Handler)(nil)
	_ caddy.Validator             = (*Handler)(nil)
	_ caddyhttp.MiddlewareHandler = (*Handler)(nil)
)

// DefaultTenant is where the tenant is read from when Tenant is not set.
const DefaultTenant = "{http.request.header.X-Tenant-Namespace}"

// Handler enforces a tenant's MetricAccess policy on requests to the
// Prometheus HTTP API. It serves only the read paths of the API; everything
// else is refused. Each served request is rebuilt from scratch with every
// selector constrained by the tenant's policy, then passed to the next handler
// (normally reverse_proxy). It needs the prom_tenancy app for its tenants.
type Handler struct {
	// Tenant is the tenant's namespace, usually a placeholder. It must resolve
	// to one Kubernetes namespace name; a repeated or comma-separated value is
	// refused. On a public ingress take it from an authenticated identity,
	// such as {http.auth.user.id} after basic_auth.
	// Default: {http.request.header.X-Tenant-Namespace}.
	Tenant string `json:"tenant,omitempty"`

	// MaxRequestBody bounds the size of a POST body in bytes. Default: 1 MiB.
	MaxRequestBody int64 `json:"max_request_body,omitempty"`

	// ExperimentalFunctions makes the PromQL parser accept experimental
	// functions. Set it only if the upstream runs with
	// --enable-feature=promql-experimental-functions: the proxy must accept no
	// less than the upstream, and a query it cannot parse is refused.
	// Default: false.
	ExperimentalFunctions bool `json:"experimental_functions,omitempty"`

	// MaxQueryLength bounds the length of a PromQL query, and of each
	// match[] selector, in bytes. Dashboard queries are a few KiB at most,
	// even with a multi-value variable expanded into a regex; VictoriaMetrics
	// refuses queries over 16 KiB by default. Default: 64 KiB.
	MaxQueryLength int `json:"max_query_length,omitempty"`

	// MaxQueryDepth bounds how deeply a query nests: the height of its
	// syntax tree, where every parenthesis, call, aggregation, range and
	// operator is one level (a + b + c is 3 deep). It is checked by a linear
	// scan before the query is parsed: parsing, printing and evaluating take
	// time proportional to length times depth, and 100,000 nested minus
	// signs took seconds. Dashboards nest about 10 deep; the default leaves
	// room for generated sums of many terms. Default: 200.
	MaxQueryDepth int `json:"max_query_depth,omitempty"`

	// MaxMatchers bounds the number of match[] selectors of one request
	// (series, labels, label values, federate). Grafana sends one; federation
	// configurations a few dozen. Default: 1000.
	MaxMatchers int `json:"max_matchers,omitempty"`

	// MaxRewrittenSize bounds the rewritten query, or the total of the
	// rewritten match[] selectors, in bytes: the policy is written into
	// every selector, so a query can grow by its number of selectors times
	// the policy's size. A GET goes upstream with it in the URL, which
	// Prometheus reads up to 1 MiB of headers, and URL escaping can triple
	// it. Default: 256 KiB.
	MaxRewrittenSize int `json:"max_rewritten_size,omitempty"`

	// MaxUnionSelectors bounds the selectors one query's unions may write.
	// A selector that overlaps several selectors of the tenant's policy which
	// do not merge into one is answered as their union, written into the
	// query (one selector for each, made disjoint); each is one more
	// selection the upstream runs, so a query that needs more is refused.
	// Default: 500.
	MaxUnionSelectors int `json:"max_union_selectors,omitempty"`

	// MaxMetadataResponse bounds, in bytes, each upstream answer read to
	// serve /api/v1/metadata (the metadata by target, and the query for
	// the targets the tenant has series of); past it the request is
	// refused. They are read as they stream, so memory stays far below it.
	// Default: 64 MiB.
	MaxMetadataResponse int64 `json:"max_metadata_response,omitempty"`

	// RewriteCacheSize bounds, in bytes, the cache of recent rewrites:
	// Grafana sends a dashboard's queries with the same text on every
	// refresh, and a query rewritten before under the same policy is taken
	// from the cache instead of being parsed, rewritten and printed again.
	// An entry is keyed by the tenant's compiled policy and the query, so a
	// changed policy never finds the old one's rewrites; the least recently
	// used entries are evicted. A negative value turns the cache off.
	// Default: 16 MiB.
	RewriteCacheSize int64 `json:"rewrite_cache_size,omitempty"`

	// Backend names the engine behind reverse_proxy: "prometheus",
	// "thanos" (Thanos Query, or its Query Frontend) or "victoriametrics".
	// It decides what the engine is known to answer differently from
	// Prometheus, and is refused or corrected for. Default: prometheus.
	Backend string `json:"backend,omitempty"`

	// BackendParams lets parameters of the backend through that only change
	// how it reads the series a request selects, never which: presets
	// "thanos" (dedup, partial_response, max_source_resolution, engine,
	// replicaLabels[]) and "victoriametrics" (nocache, round_digits,
	// latency_offset), or single names of those; each only with its
	// Backend. They are accepted on every served path (Grafana's custom
	// query parameters come with each of its requests), their values
	// checked, and forwarded only on the endpoints the engine reads them
	// on (backendparams.go), dropped on the others. Thanos's analyze, and
	// parameters with which an engine enforces tenancy itself
	// (VictoriaMetrics's extra_label, extra_filters[]), are refused
	// whatever this says. Default: none; any parameter Prometheus does not
	// define is refused.
	BackendParams []string `json:"backend_params,omitempty"`

	// ReplicaLabels are the labels Thanos Query deduplicates by, as its
	// --query.replica-label flags name them. Its query and series answers
	// carry none of them, but its label names and values answers still do;
	// the proxy takes them out of /api/v1/labels and answers a request for
	// the values of one with none, as a Prometheus holding the tenant's
	// series once does (thanos.go). Only with backend thanos. Default: none
	// (Thanos has no default either, and a guess could hide a label the
	// series really have).
	ReplicaLabels []string `json:"replica_labels,omitempty"`

	backend       backendKind
	backendParams map[string]param // the allowed BackendParams, by name
	registry      *tenancy.Registry
	enforcer      *rewrite.Enforcer
	logger        *zap.Logger
}

// CaddyModule returns the Caddy module information.
func (Handler) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.prom_tenant",
		New: func() caddy.Module { return new(Handler) },
	}
}

// Provision sets up the handler.
func (h *Handler) Provision(ctx caddy.Context) error {
	h.provisionDefaults(ctx)
	if err := metricreg.Register(ctx.GetMetricsRegistry(), collectors...); err != nil {
		return fmt.Errorf("prom_tenant: registering metrics: %w", err)
	}
	var err error
	h.registry, err = tenancy.ConfiguredRegistry(ctx, "prom_tenant")
	if err != nil {
		return err
	}
	pruneTenantSeries(ctx, h.registry)
	return nil
}

// provisionDefaults sets everything Provision sets but the registry.
func (h *Handler) provisionDefaults(ctx caddy.Context) {
	h.logger = ctx.Logger()
	if h.Tenant == "" {
		h.Tenant = DefaultTenant
	}
	if h.MaxRequestBody == 0 {
		h.MaxRequestBody = 1 << 20
	}
	if h.MaxMetadataResponse == 0 {
		h.MaxMetadataResponse = 64 << 20
	}
	if h.RewriteCacheSize == 0 {
		h.RewriteCacheSize = 16 << 20
	}
	h.backend, _ = parseBackend(h.Backend)                                 // Validate refuses an unknown one
	h.backendParams, _ = parseBackendParamsFor(h.backend, h.BackendParams) // and unknown parameters
	d := rewrite.DefaultLimits
	for _, f := range []struct {
		v   *int
		def int
	}{
		{&h.MaxQueryLength, d.MaxQueryLength},
		{&h.MaxQueryDepth, d.MaxDepth},
		{&h.MaxMatchers, d.MaxMatchers},
		{&h.MaxRewrittenSize, d.MaxRewrittenSize},
		{&h.MaxUnionSelectors, d.MaxUnionSelectors},
	} {
		if *f.v == 0 {
			*f.v = f.def
		}
	}
	h.enforcer = rewrite.NewEnforcer(parser.Options{EnableExperimentalFunctions: h.ExperimentalFunctions}).WithLimits(rewrite.Limits{
		MaxQueryLength:    h.MaxQueryLength,
		MaxDepth:          h.MaxQueryDepth,
		MaxMatchers:       h.MaxMatchers,
		MaxRewrittenSize:  h.MaxRewrittenSize,
		MaxUnionSelectors: h.MaxUnionSelectors,
	}).WithCache(int(min(h.RewriteCacheSize, 1<<40)))
}

// Validate checks the configuration.
func (h *Handler) Validate() error {
	if h.MaxRequestBody < 0 {
		return fmt.Errorf("max_request_body must not be negative, got %d", h.MaxRequestBody)
	}
	backend, err := parseBackend(h.Backend)
	if err != nil {
		return err
	}
	if _, err := parseBackendParamsFor(backend, h.BackendParams); err != nil {
		return err
	}
	if err := validateReplicaLabels(backend, h.ReplicaLabels); err != nil {
		return err
	}
	if h.MaxMetadataResponse < 0 {
		return fmt.Errorf("max_metadata_response must not be negative, got %d", h.MaxMetadataResponse)
	}
	for _, f := range []struct {
		name string
		v    int
	}{
		{"max_query_length", h.MaxQueryLength},
		{"max_query_depth", h.MaxQueryDepth},
		{"max_matchers", h.MaxMatchers},
		{"max_rewritten_size", h.MaxRewrittenSize},
		{"max_union_selectors", h.MaxUnionSelectors},
	} {
		if f.v < 0 {
			return fmt.Errorf("%s must not be negative, got %d", f.name, f.v)
		}
	}
	return nil
}

// ServeHTTP enforces the tenant's policy, then calls next. Every request is
// counted in the handler's metrics, and the access log gets the tenant and,
// for a refusal, its reason ("refusal").
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	start := time.Now()
	endpoint := endpointName(r.URL.Path)
	tenant, known, err := h.serve(w, r, next, endpoint)
	var ae *promapi.Error
	if err != nil {
		ae = asAPIError(err)
	}
	outcome, reason := outcome(err, ae)
	label := unknownTenant
	if known {
		label = tenant
	}
	if err == nil {
		s := servedSeriesOf(label, endpoint)
		s.requests.Inc()
		s.duration.Observe(time.Since(start).Seconds())
	} else {
		metrics.requests.WithLabelValues(label, endpoint, outcome, reason).Inc()
		metrics.duration.WithLabelValues(label, endpoint, outcome).Observe(time.Since(start).Seconds())
	}

	extra, _ := r.Context().Value(caddyhttp.ExtraLogFieldsCtxKey).(*caddyhttp.ExtraLogFields)
	if extra != nil && tenant != "" {
		extra.Add(zap.String("tenant", tenant))
	}
	if err == nil {
		return nil
	}
	if ae == nil {
		return err
	}
	if extra != nil && outcome == outcomeRefused {
		extra.Add(zap.String("refusal", reason))
	}
	if outcome == outcomeUpstreamError {
		h.logUpstreamError(r, tenant, err, extra)
	}
	if c := h.logger.Check(zapcore.DebugLevel, "refused"); c != nil {
		c.Write(zap.String("tenant", tenant), zap.String("path", r.URL.Path),
			zap.Int("status", ae.Status), zap.String("reason", reason), zap.String("error", ae.Message))
	}
	ae.Write(w)
	return nil
}

// serve does the work of ServeHTTP and returns the tenant once read, and
// whether it is a tenant of the registry. A refusal is returned as an
// error, before anything is written.
func (h *Handler) serve(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler, endpoint string) (string, bool, error) {
	ep, ok := lookupEndpoint(r.URL.Path)
	if !ok {
		return "", false, promapi.Refuse(promapi.NotFound, "path %q is not served by the tenant proxy", r.URL.Path)
	}
	if !ep.allows(r.Method) {
		w.Header().Set("Allow", allowHeader(ep))
		return "", false, promapi.Refuse(promapi.MethodNotAllowed, "method %s is not allowed for %s", r.Method, r.URL.Path)
	}
	tenant, err := h.tenant(r)
	if err != nil {
		return "", false, err
	}
	t, ok := h.registry.Lookup(tenant)
	if !ok {
		// Checked only here: the registry's tenants are namespace names
		// (validated with their objects), and the check is a regexp.
		if errs := validation.IsDNS1123Label(tenant); len(errs) > 0 {
			return "", false, promapi.Refuse(promapi.BadTenant, "tenant %q is not a namespace name: %s", tenant, strings.Join(errs, "; "))
		}
		return tenant, false, promapi.Refuse(promapi.UnknownTenant, "unknown tenant %q: no valid MetricAccess in that namespace", tenant)
	}
	// After the tenant: no tenant is 401 first, and the engine behind the
	// proxy is none of an anonymous client's business.
	if err := h.thanosRefusal(ep); err != nil {
		return tenant, true, err
	}
	form, err := readForm(r, ep, h.MaxRequestBody, h.backendParams)
	if err != nil {
		return tenant, true, err
	}
	next = backendCounter{next: next, tenant: tenant, endpoint: endpoint}
	original := form.Get("query")
	switch ep.kind {
	case kindQuery:
		err = h.enforceQuery(r.Context(), t.Policy, form, h.enforcer.EnforceQuery)
	case kindExemplar:
		err = h.enforceQuery(r.Context(), t.Policy, form, h.enforcer.EnforceExemplarQuery)
	case kindMatch:
		err = h.enforceMatch(r.Context(), t.Policy, ep, r.URL.Path, form)
		if err == nil && h.isReplicaLabelValues(ep, r.URL.Path, form) {
			return tenant, true, writeNoLabelValues(w)
		}
	case kindMetadata:
		if h.backend == backendVictoriaMetrics {
			return tenant, true, serveVictoriaMetricsMetadata(w)
		}
		// Answered from sub-requests; r itself is not forwarded.
		return tenant, true, h.serveMetadata(w, r, t.Policy, form, next)
	case kindNoSeries:
	default:
		err = fmt.Errorf("endpoint kind %d not handled", ep.kind) // unreachable: fail closed
	}
	if err != nil {
		return tenant, true, err
	}
	w, done := h.labelNamesWriter(w, r, ep, form) // reads dedup and replicaLabels[] before they are dropped
	dropBackendParams(form, ep)
	rebuild(r, r.URL.Path, form)
	ew := newEnvelopeWriter(w)
	if vw := h.victoriaMetricsWriter(ew, original, form.Get("query")); vw != nil {
		err = next.ServeHTTP(vw, r)
		vw.finish()
	} else {
		err = next.ServeHTTP(ew, r)
	}
	wrapped := ew.finish() // the upstream's own error answer, in the envelope
	if derr := done(); derr != nil && err == nil {
		return tenant, true, derr
	}
	if wrapped {
		return tenant, true, nil
	}
	return tenant, true, err
}

// tenant resolves the tenant placeholder to one name; serve checks that it
// is a namespace name if it is not a tenant.
func (h *Handler) tenant(r *http.Request) (string, error) {
	repl, _ := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
	if repl == nil {
		return "", fmt.Errorf("no replacer in request context")
	}
	tenant := strings.TrimSpace(repl.ReplaceAll(h.Tenant, ""))
	switch {
	case tenant == "":
		return "", promapi.Refuse(promapi.NoTenant, "no tenant: the request does not say which namespace it is for")
	case strings.Contains(tenant, ","):
		return "", promapi.Refuse(promapi.BadTenant, "more than one tenant given (%q): a request is for exactly one namespace", tenant)
	}
	return tenant, nil
}

// enforceQuery rewrites the form's query with enforce.
func (h *Handler) enforceQuery(ctx context.Context, p *rewrite.Policy, form url.Values, enforce func(context.Context, *rewrite.Policy, string) (string, error)) error {
	q := form.Get("query")
	if q == "" {
		return promapi.Refuse(promapi.BadRequest, "parameter \"query\" is missing")
	}
	out, err := enforce(ctx, p, q)
	if err != nil {
		return err
	}
	if c := h.logger.Check(zapcore.DebugLevel, "rewrote query"); c != nil {
		c.Write(zap.String("query", q), zap.String("rewritten", out))
	}
	form.Set("query", out)
	return nil
}

// enforceMatch rewrites the form's match[] for the endpoint ep at path.
func (h *Handler) enforceMatch(ctx context.Context, p *rewrite.Policy, ep *endpoint, path string, form url.Values) error {
	match := form["match[]"]
	if ep.matchRequired && len(match) == 0 {
		return promapi.Refuse(promapi.BadRequest, "no match[] parameter provided")
	}
	var out []string
	var err error
	if label := valuesLabel(path); ep == labelValues && label != "" {
		out, err = h.enforcer.EnforceLabelValuesMatchers(ctx, p, label, match)
	} else {
		out, err = h.enforcer.EnforceMatchers(ctx, p, match)
	}
	if err != nil {
		return err
	}
	if c := h.logger.Check(zapcore.DebugLevel, "rewrote match[]"); c != nil {
		c.Write(zap.Strings("match", match), zap.Strings("rewritten", out))
	}
	form["match[]"] = out
	return nil
}

func allowHeader(ep *endpoint) string {
	if ep.post {
		return "GET, POST"
	}
	return "GET"
}
