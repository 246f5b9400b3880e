package promtenant

import (
	"context"
	"errors"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

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
		e := promapi.Refuse(promapi.UpstreamFailed, "upstream Prometheus: %v", he.Err)
		if he.StatusCode != 0 {
			e.Status = he.StatusCode
		}
		return e
	// After the next handler's errors: those report the upstream.
	case errors.Is(err, context.Canceled):
		return promapi.Refuse(promapi.Canceled, "request canceled by the client while the query was being rewritten")
	case errors.Is(err, context.DeadlineExceeded):
		return promapi.Refuse(promapi.DeadlinePassed, "request deadline passed while the query was being rewritten")
	default:
		return nil
	}
}
