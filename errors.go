package promtenant

import (
	"context"
	"errors"
	"net/http"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/prom-tenant/caddy-prom-tenant/internal/promapi"
	"github.com/prom-tenant/caddy-prom-tenant/rewrite"
)

// limitOptions are the Caddyfile options that raise each cap.
var limitOptions = map[rewrite.Limit]string{
	rewrite.LimitQueryLength:   "max_query_length",
	rewrite.LimitDepth:         "max_query_depth",
	rewrite.LimitMatchers:      "max_matchers",
	rewrite.LimitRewrittenSize: "max_rewritten_size",
}

// asAPIError maps an error to the refusal the client sees: enforcement
// errors and refusals as bad requests, an upstream failure reported by the
// next handler as unavailable. Anything else is nil: Caddy handles it.
func asAPIError(err error) *promapi.Error {
	var ae *promapi.Error
	var he caddyhttp.HandlerError
	var le *rewrite.LimitError
	switch {
	case errors.As(err, &ae):
		return ae
	case errors.As(err, &le):
		return promapi.Refuse(promapi.OverLimit, "%v; the prom_tenant option %s raises it", le, limitOptions[le.Limit])
	case errors.Is(err, rewrite.ErrParse):
		return promapi.Refuse(promapi.BadQuery, "%s", err)
	case errors.Is(err, rewrite.ErrIrreducibleUnion):
		return promapi.Refuse(promapi.IrreducibleUnion, "%s", err)
	case errors.Is(err, rewrite.ErrUnionTooLarge):
		return promapi.Refuse(promapi.OverLimit, "%s", err)
	case errors.Is(err, rewrite.ErrUnsupported):
		return promapi.Refuse(promapi.Unsupported, "%s", err)
	case errors.As(err, &he):
		return upstreamRefusal(he)
	// After the next handler's errors: those report the upstream.
	case errors.Is(err, context.Canceled):
		return promapi.Refuse(promapi.Canceled, "request canceled by the client while the query was being rewritten")
	case errors.Is(err, context.DeadlineExceeded):
		return promapi.Refuse(promapi.DeadlinePassed, "request deadline passed while the query was being rewritten")
	default:
		return nil
	}
}

// upstreamRefusal is what the tenant is told when the next handler
// (reverse_proxy) got no answer from the upstream. Go's error names the
// upstream's address ("dial tcp 10.0.0.9:9090: connect: connection
// refused"), which is none of a tenant's business: the tenant learns what
// kind of failure it was, and logUpstreamError keeps the cause for the
// operator. reverse_proxy's status says the kind: 503 no upstream to try,
// 504 a timeout, 499 the client left, 502 anything else.
func upstreamRefusal(he caddyhttp.HandlerError) *promapi.Error {
	var e *promapi.Error
	switch he.StatusCode {
	case http.StatusServiceUnavailable:
		e = promapi.Refuse(promapi.UpstreamFailed, "upstream unavailable: no upstreams available")
	case http.StatusGatewayTimeout:
		e = promapi.Refuse(promapi.UpstreamTimeout, "upstream timeout: the upstream Prometheus did not answer in time")
	case promapi.StatusClientClosedRequest:
		e = promapi.Refuse(promapi.UpstreamFailed, "request canceled by the client while the upstream was answering")
	default:
		e = promapi.Refuse(promapi.UpstreamFailed, "upstream unavailable: the upstream Prometheus could not be reached")
	}
	if he.StatusCode != 0 {
		e.Status = he.StatusCode
	}
	return e
}

// logUpstreamError logs why the upstream gave no answer, with the detail
// the tenant's answer leaves out (upstreamRefusal), in the handler's log
// and in the request's access log entry ("upstream_error"). A client that
// left is logged at debug level: that is no fault of the upstream's.
func (h *Handler) logUpstreamError(r *http.Request, tenant string, err error, extra *caddyhttp.ExtraLogFields) {
	var he caddyhttp.HandlerError
	if !errors.As(err, &he) || he.Err == nil {
		return
	}
	if extra != nil {
		extra.Add(zap.String("upstream_error", he.Err.Error()))
	}
	level := zapcore.ErrorLevel
	if he.StatusCode == promapi.StatusClientClosedRequest {
		level = zapcore.DebugLevel
	}
	if c := h.logger.Check(level, "upstream gave no answer"); c != nil {
		c.Write(zap.String("tenant", tenant), zap.String("path", r.URL.Path), zap.Int("status", he.StatusCode), zap.Error(he.Err))
	}
}
