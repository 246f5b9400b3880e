package promtenant

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/prom-tenant/caddy-prom-tenant/internal/promapi"
	"github.com/prom-tenant/caddy-prom-tenant/rewrite"
)

// Error types of Prometheus's HTTP API envelope, plus the two it has no word for.
const (
	errorBadData      = "bad_data"
	errorNotFound     = "not_found"
	errorUnauthorized = "unauthorized"
	errorForbidden    = "forbidden"
	errorUnavailable  = "unavailable"
	errorCanceled     = "canceled"
	errorTimeout      = "timeout"
)

// statusClientClosedRequest is what Prometheus, Caddy's reverse_proxy and
// nginx answer (and log) for a request whose client went away.
const statusClientClosedRequest = 499

// apiError is a refusal: it is written in Prometheus's JSON error envelope so
// that Grafana and API clients show the reason.
type apiError struct {
	status    int
	errorType string
	msg       string
	// reason is one of the reason* constants: the "reason" label of
	// prometheus_proxy_requests_total and the access log's "refusal" field.
	reason string
}

func (e *apiError) Error() string { return e.msg }

// refuse returns a refusal; its reason follows from the status (see
// reasonForStatus) unless set with because.
func refuse(status int, errorType, format string, args ...any) *apiError {
	return &apiError{status: status, errorType: errorType, msg: fmt.Sprintf(format, args...), reason: reasonForStatus(status)}
}

// because sets the refusal's reason where the status does not tell it.
func (e *apiError) because(reason string) *apiError {
	e.reason = reason
	return e
}

// Reasons of a refusal or failure: a small fixed set, so that they can be
// metric label values.
const (
	reasonNoTenant         = "no_tenant"         // 401: the request names no tenant
	reasonUnknownTenant    = "unknown_tenant"    // 403: no valid MetricAccess in that namespace
	reasonBadTenant        = "bad_tenant"        // 400: several tenants, or not a namespace name
	reasonNotFound         = "not_found"         // 404: a path that is not served
	reasonMethod           = "method"            // 405
	reasonBadRequest       = "bad_request"       // 400: parameters or form (unknown, repeated, unparsable, missing)
	reasonBadQuery         = "bad_query"         // 400: PromQL or a selector that does not parse
	reasonIrreducibleUnion = "irreducible_union" // 400: a range selector outside a function over a union of policy selectors
	reasonUnsupported      = "unsupported"       // 400: a construct the rewriter refuses (info(), ...)
	reasonBodyTooLarge     = "body_too_large"    // 413
	reasonContentType      = "content_type"      // 415
	reasonTooLarge         = "too_large"         // 422: an upstream answer over a cap (max_metadata_response)
	reasonUpstream         = "upstream"          // 5xx: the upstream failed or answered what cannot be used
	reasonLimit            = "limit"             // 400: over a cap of the request's work (length, depth, match[], rewritten size, union selectors)
	reasonCanceled         = "canceled"          // 499/503: the client left or its deadline passed during enforcement; the work stopped
)

// limitOptions are the Caddyfile options that raise each cap.
var limitOptions = map[rewrite.Limit]string{
	rewrite.LimitQueryLength:   "max_query_length",
	rewrite.LimitDepth:         "max_query_depth",
	rewrite.LimitMatchers:      "max_matchers",
	rewrite.LimitRewrittenSize: "max_rewritten_size",
}

func reasonForStatus(status int) string {
	switch status {
	case http.StatusUnauthorized:
		return reasonNoTenant
	case http.StatusForbidden:
		return reasonUnknownTenant
	case http.StatusNotFound:
		return reasonNotFound
	case http.StatusMethodNotAllowed:
		return reasonMethod
	case http.StatusRequestEntityTooLarge:
		return reasonBodyTooLarge
	case http.StatusUnsupportedMediaType:
		return reasonContentType
	}
	if status >= 500 {
		return reasonUpstream
	}
	return reasonBadRequest
}

// asAPIError maps an error to the refusal the client sees: enforcement
// errors and refusals as bad requests, an upstream failure reported by the
// next handler as unavailable. Anything else is nil: Caddy handles it.
func asAPIError(err error) *apiError {
	var ae *apiError
	var he caddyhttp.HandlerError
	var le *rewrite.LimitError
	switch {
	case errors.As(err, &ae):
		return ae
	case errors.As(err, &le):
		return &apiError{status: http.StatusBadRequest, errorType: errorBadData, reason: reasonLimit,
			msg: fmt.Sprintf("%v; the prom_tenant option %s raises it", le, limitOptions[le.Limit])}
	case errors.Is(err, rewrite.ErrParse):
		return &apiError{status: http.StatusBadRequest, errorType: errorBadData, msg: err.Error(), reason: reasonBadQuery}
	case errors.Is(err, rewrite.ErrIrreducibleUnion):
		return &apiError{status: http.StatusBadRequest, errorType: errorBadData, msg: err.Error(), reason: reasonIrreducibleUnion}
	case errors.Is(err, rewrite.ErrUnionTooLarge):
		return &apiError{status: http.StatusBadRequest, errorType: errorBadData, msg: err.Error(), reason: reasonLimit}
	case errors.Is(err, rewrite.ErrUnsupported):
		return &apiError{status: http.StatusBadRequest, errorType: errorBadData, msg: err.Error(), reason: reasonUnsupported}
	case errors.As(err, &he):
		status := he.StatusCode
		if status == 0 {
			status = http.StatusBadGateway
		}
		return &apiError{status: status, errorType: errorUnavailable, msg: fmt.Sprintf("upstream Prometheus: %v", he.Err), reason: reasonUpstream}
	// After the next handler's errors: those report the upstream.
	case errors.Is(err, context.Canceled):
		return &apiError{status: statusClientClosedRequest, errorType: errorCanceled, reason: reasonCanceled,
			msg: "request canceled by the client while the query was being rewritten"}
	case errors.Is(err, context.DeadlineExceeded):
		return &apiError{status: http.StatusServiceUnavailable, errorType: errorTimeout, reason: reasonCanceled,
			msg: "request deadline passed while the query was being rewritten"}
	default:
		return nil
	}
}

func writeAPIError(w http.ResponseWriter, e *apiError) {
	promapi.WriteError(w, e.status, e.errorType, e.msg)
}
