package promtenant

import (
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
)

// apiError is a refusal: it is written in Prometheus's JSON error envelope so
// that Grafana and API clients show the reason.
type apiError struct {
	status    int
	errorType string
	msg       string
}

func (e *apiError) Error() string { return e.msg }

func refuse(status int, errorType, format string, args ...any) *apiError {
	return &apiError{status: status, errorType: errorType, msg: fmt.Sprintf(format, args...)}
}

// asAPIError maps an error to the refusal the client sees: enforcement
// errors and refusals as bad requests, an upstream failure reported by the
// next handler as unavailable. Anything else is nil: Caddy handles it.
func asAPIError(err error) *apiError {
	var ae *apiError
	var he caddyhttp.HandlerError
	switch {
	case errors.As(err, &ae):
		return ae
	case errors.Is(err, rewrite.ErrParse), errors.Is(err, rewrite.ErrIrreducibleUnion), errors.Is(err, rewrite.ErrUnsupported):
		return &apiError{status: http.StatusBadRequest, errorType: errorBadData, msg: err.Error()}
	case errors.As(err, &he):
		status := he.StatusCode
		if status == 0 {
			status = http.StatusBadGateway
		}
		return &apiError{status: status, errorType: errorUnavailable, msg: fmt.Sprintf("upstream Prometheus: %v", he.Err)}
	default:
		return nil
	}
}

func writeAPIError(w http.ResponseWriter, e *apiError) {
	promapi.WriteError(w, e.status, e.errorType, e.msg)
}
