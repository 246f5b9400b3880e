package promtenant

import (
	"strconv"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/dustin/go-humanize"
)

func init() {
	httpcaddyfile.RegisterHandlerDirective("prom_tenant", parseCaddyfile)
	// Enforcement must happen before the request is proxied; users need no
	// `order` line.
	httpcaddyfile.RegisterDirectiveOrder("prom_tenant", httpcaddyfile.Before, "reverse_proxy")
}

// Interface guard.
var _ caddyfile.Unmarshaler = (*Handler)(nil)

// UnmarshalCaddyfile sets up the handler from Caddyfile tokens. Syntax:
//
//	prom_tenant [<matcher>] {
//	    tenant                 <placeholder>
//	    max_request_body       <size>
//	    max_metadata_response  <size>
//	    experimental_functions
//	    max_query_length       <size>
//	    max_query_depth        <n>
//	    max_matchers           <n>
//	    max_rewritten_size     <size>
//	    max_union_selectors    <n>
//	}
func (h *Handler) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // consume directive name
	if d.NextArg() {
		return d.ArgErr()
	}
	for d.NextBlock(0) {
		switch d.Val() {
		case "tenant":
			if !d.NextArg() {
				return d.ArgErr()
			}
			h.Tenant = d.Val()
			if d.NextArg() {
				return d.ArgErr()
			}
		case "max_request_body":
			if !d.NextArg() {
				return d.ArgErr()
			}
			size, err := humanize.ParseBytes(d.Val())
			if err != nil {
				return d.Errf("parsing max_request_body %q: %v", d.Val(), err)
			}
			if size == 0 || size > 1<<30 {
				return d.Errf("max_request_body %q must be between 1 byte and 1 GiB", d.Val())
			}
			h.MaxRequestBody = int64(size)
			if d.NextArg() {
				return d.ArgErr()
			}
		case "max_metadata_response":
			if !d.NextArg() {
				return d.ArgErr()
			}
			size, err := humanize.ParseBytes(d.Val())
			if err != nil {
				return d.Errf("parsing max_metadata_response %q: %v", d.Val(), err)
			}
			if size == 0 || size > 1<<40 {
				return d.Errf("max_metadata_response %q must be between 1 byte and 1 TiB", d.Val())
			}
			h.MaxMetadataResponse = int64(size)
			if d.NextArg() {
				return d.ArgErr()
			}
		case "experimental_functions":
			if d.NextArg() {
				return d.ArgErr()
			}
			h.ExperimentalFunctions = true
		case "max_query_length", "max_rewritten_size":
			opt := d.Val()
			if !d.NextArg() {
				return d.ArgErr()
			}
			size, err := humanize.ParseBytes(d.Val())
			if err != nil {
				return d.Errf("parsing %s %q: %v", opt, d.Val(), err)
			}
			if size == 0 || size > 1<<30 {
				return d.Errf("%s %q must be between 1 byte and 1 GiB", opt, d.Val())
			}
			if opt == "max_query_length" {
				h.MaxQueryLength = int(size)
			} else {
				h.MaxRewrittenSize = int(size)
			}
			if d.NextArg() {
				return d.ArgErr()
			}
		case "max_query_depth", "max_matchers", "max_union_selectors":
			opt := d.Val()
			if !d.NextArg() {
				return d.ArgErr()
			}
			n, err := strconv.Atoi(d.Val())
			if err != nil || n < 1 || n > 1<<20 {
				return d.Errf("%s %q must be a whole number between 1 and %d", opt, d.Val(), 1<<20)
			}
			switch opt {
			case "max_query_depth":
				h.MaxQueryDepth = n
			case "max_matchers":
				h.MaxMatchers = n
			default:
				h.MaxUnionSelectors = n
			}
			if d.NextArg() {
				return d.ArgErr()
			}
		default:
			return d.Errf("unrecognized prom_tenant subdirective %q", d.Val())
		}
	}
	return nil
}

func parseCaddyfile(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	var handler Handler
	err := handler.UnmarshalCaddyfile(h.Dispenser)
	return &handler, err
}
