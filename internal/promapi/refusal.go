package promapi

import (
	"fmt"
	"net/http"
)

// Error types of Prometheus's HTTP API envelope (errorType), plus "canceled"
// and "timeout", which Prometheus uses too for a query that stopped.
const (
	ErrorBadData      = "bad_data"
	ErrorNotFound     = "not_found"
	ErrorUnauthorized = "unauthorized"
	ErrorForbidden    = "forbidden"
	ErrorUnavailable  = "unavailable"
	ErrorExecution    = "execution" // Prometheus's type for a query too large to answer
	ErrorCanceled     = "canceled"
	ErrorTimeout      = "timeout"
	ErrorInternal     = "internal" // Prometheus's type for a failure of its own
)

// Reasons of a refusal: a small fixed set, so that they can be metric label
// values (prometheus_proxy_requests_total's "reason") and the access log's
// "refusal" field. Dashboards and alerts match on them: never change one.
const (
	ReasonNoTenant         = "no_tenant"         // the request names no tenant
	ReasonUnknownTenant    = "unknown_tenant"    // no valid MetricAccess in that namespace
	ReasonBadTenant        = "bad_tenant"        // several tenants, or not a namespace name
	ReasonNotFound         = "not_found"         // a path that is not served
	ReasonMethod           = "method"            // a method the path does not take
	ReasonBadRequest       = "bad_request"       // parameters or form: unknown, repeated, unparsable, missing
	ReasonBadQuery         = "bad_query"         // PromQL or a selector that does not parse
	ReasonIrreducibleUnion = "irreducible_union" // a range selector outside a function over a union of policy selectors
	ReasonUnsupported      = "unsupported"       // a construct the rewriter refuses (info(), ...)
	ReasonBodyTooLarge     = "body_too_large"    // over max_request_body
	ReasonContentType      = "content_type"      // a body that is not a form
	ReasonTooLarge         = "too_large"         // an upstream answer over a cap (max_metadata_response)
	ReasonUpstream         = "upstream"          // the upstream failed or answered what cannot be used
	ReasonLimit            = "limit"             // over a cap of the request's work (length, depth, match[], rewritten size, union selectors)
	ReasonCanceled         = "canceled"          // the client left or its deadline passed during enforcement
	ReasonUnauthenticated  = "unauthenticated"   // no valid bearer token (authenticate_kubernetes)
	ReasonDenied           = "denied"            // the user may not read the namespace (authenticate_kubernetes)
	ReasonAuthUnavailable  = "auth_unavailable"  // the Kubernetes API server could not review the request
)

// Refusal is a kind of refusal: one row of the table below, which fixes its
// status, error type and reason. The message is the Error's own.
type Refusal int

// The kinds of refusal of the prom_tenant handler and of
// authenticate_kubernetes.
const (
	NoTenant Refusal = iota
	UnknownTenant
	BadTenant
	NotFound
	MethodNotAllowed
	BadRequest
	SlowBody
	BadQuery
	IrreducibleUnion
	Unsupported
	BodyTooLarge
	ContentType
	TooLarge
	UpstreamFailed
	UpstreamTimeout
	OverLimit
	Canceled
	DeadlinePassed
	Unauthenticated
	Denied
	AuthUnavailable
	numRefusals
)

// StatusClientClosedRequest is what Prometheus, Caddy's reverse_proxy and
// nginx answer (and log) for a request whose client went away.
const StatusClientClosedRequest = 499

// refusals is the table: written once here, read only.
var refusals = [numRefusals]struct {
	status    int
	errorType string
	reason    string
}{
	NoTenant:         {http.StatusUnauthorized, ErrorUnauthorized, ReasonNoTenant},
	UnknownTenant:    {http.StatusForbidden, ErrorForbidden, ReasonUnknownTenant},
	BadTenant:        {http.StatusBadRequest, ErrorBadData, ReasonBadTenant},
	NotFound:         {http.StatusNotFound, ErrorNotFound, ReasonNotFound},
	MethodNotAllowed: {http.StatusMethodNotAllowed, ErrorBadData, ReasonMethod},
	BadRequest:       {http.StatusBadRequest, ErrorBadData, ReasonBadRequest},
	SlowBody:         {http.StatusRequestTimeout, ErrorBadData, ReasonBadRequest},
	BadQuery:         {http.StatusBadRequest, ErrorBadData, ReasonBadQuery},
	IrreducibleUnion: {http.StatusBadRequest, ErrorBadData, ReasonIrreducibleUnion},
	Unsupported:      {http.StatusBadRequest, ErrorBadData, ReasonUnsupported},
	BodyTooLarge:     {http.StatusRequestEntityTooLarge, ErrorBadData, ReasonBodyTooLarge},
	ContentType:      {http.StatusUnsupportedMediaType, ErrorBadData, ReasonContentType},
	TooLarge:         {http.StatusUnprocessableEntity, ErrorExecution, ReasonTooLarge},
	UpstreamFailed:   {http.StatusBadGateway, ErrorUnavailable, ReasonUpstream},
	UpstreamTimeout:  {http.StatusGatewayTimeout, ErrorTimeout, ReasonUpstream},
	OverLimit:        {http.StatusBadRequest, ErrorBadData, ReasonLimit},
	Canceled:         {StatusClientClosedRequest, ErrorCanceled, ReasonCanceled},
	DeadlinePassed:   {http.StatusServiceUnavailable, ErrorTimeout, ReasonCanceled},
	Unauthenticated:  {http.StatusUnauthorized, ErrorUnauthorized, ReasonUnauthenticated},
	Denied:           {http.StatusForbidden, ErrorForbidden, ReasonDenied},
	AuthUnavailable:  {http.StatusServiceUnavailable, ErrorUnavailable, ReasonAuthUnavailable},
}

// Status is the HTTP status of the refusal.
func (r Refusal) Status() int { return refusals[r].status }

// ErrorType is the envelope's errorType.
func (r Refusal) ErrorType() string { return refusals[r].errorType }

// Reason is the refusal's reason (one of the Reason constants).
func (r Refusal) Reason() string { return refusals[r].reason }

// Error is a refusal with its message, answered in the envelope.
type Error struct {
	Refusal Refusal
	// Status is the refusal's status, or the upstream's where it answered
	// one (UpstreamFailed).
	Status  int
	Message string
	// Type is the envelope's errorType where it is not the refusal's: an
	// upstream's own (UpstreamFailed). Default: the refusal's.
	Type string
}

// Refuse returns a refusal of kind r with a formatted message.
func Refuse(r Refusal, format string, args ...any) *Error {
	return &Error{Refusal: r, Status: r.Status(), Message: fmt.Sprintf(format, args...)}
}

func (e *Error) Error() string { return e.Message }

// ErrorType is the envelope's errorType.
func (e *Error) ErrorType() string {
	if e.Type != "" {
		return e.Type
	}
	return e.Refusal.ErrorType()
}

// Reason is the refusal's reason (one of the Reason constants).
func (e *Error) Reason() string { return e.Refusal.Reason() }

// Write answers the refusal in the envelope.
func (e *Error) Write(w http.ResponseWriter) {
	WriteError(w, e.Status, e.ErrorType(), e.Message)
}
