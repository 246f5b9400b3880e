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
//	    rewrite_cache_size     <size>|off
//	    backend                prometheus|thanos|victoriametrics
//	    backend_params         <preset|parameter>...
//	    replica_labels         <label>...
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
			size, err := sizeArg(d, 1<<30, "1 GiB")
			if err != nil {
				return err
			}
			h.MaxRequestBody = int64(size)
		case "max_metadata_response":
			size, err := sizeArg(d, 1<<40, "1 TiB")
			if err != nil {
				return err
			}
			h.MaxMetadataResponse = int64(size)
		case "experimental_functions":
			if d.NextArg() {
				return d.ArgErr()
			}
			h.ExperimentalFunctions = true
		case "max_query_length":
			size, err := sizeArg(d, 1<<30, "1 GiB")
			if err != nil {
				return err
			}
			h.MaxQueryLength = int(size)
		case "max_rewritten_size":
			size, err := sizeArg(d, 1<<30, "1 GiB")
			if err != nil {
				return err
			}
			h.MaxRewrittenSize = int(size)
		case "max_query_depth":
			n, err := countArg(d)
			if err != nil {
				return err
			}
			h.MaxQueryDepth = n
		case "max_matchers":
			n, err := countArg(d)
			if err != nil {
				return err
			}
			h.MaxMatchers = n
		case "rewrite_cache_size":
			if d.CountRemainingArgs() == 1 {
				d.NextArg()
				if d.Val() == "off" {
					h.RewriteCacheSize = -1
					break
				}
				d.Prev() // back to the option's name, as sizeArg expects
			}
			size, err := sizeArg(d, 1<<40, "1 TiB")
			if err != nil {
				return err
			}
			h.RewriteCacheSize = int64(size)
		case "backend":
			if !d.NextArg() {
				return d.ArgErr()
			}
			if _, err := parseBackend(d.Val()); err != nil {
				return d.Err(err.Error())
			}
			h.Backend = d.Val()
			if d.NextArg() {
				return d.ArgErr()
			}
		case "backend_params":
			args := d.RemainingArgs()
			if len(args) == 0 {
				return d.ArgErr()
			}
			if _, err := parseBackendParams(args); err != nil {
				return d.Err(err.Error())
			}
			h.BackendParams = append(h.BackendParams, args...)
		case "replica_labels":
			args := d.RemainingArgs()
			if len(args) == 0 {
				return d.ArgErr()
			}
			if err := checkReplicaLabelNames(args); err != nil {
				return d.Err(err.Error())
			}
			h.ReplicaLabels = append(h.ReplicaLabels, args...)
		case "max_union_selectors":
			n, err := countArg(d)
			if err != nil {
				return err
			}
			h.MaxUnionSelectors = n
		default:
			return d.Errf("unrecognized prom_tenant subdirective %q", d.Val())
		}
	}
	// What depends on backend, which may come after them in the block.
	backend, _ := parseBackend(h.Backend)
	if _, err := parseBackendParamsFor(backend, h.BackendParams); err != nil {
		return d.Err(err.Error())
	}
	if err := validateReplicaLabels(backend, h.ReplicaLabels); err != nil {
		return d.Err(err.Error())
	}
	return nil
}

// sizeArg reads the current option's one argument: a size in bytes
// (64KiB, 1MiB) from 1 byte to max, which maxText names in the error.
func sizeArg(d *caddyfile.Dispenser, max uint64, maxText string) (uint64, error) {
	opt := d.Val()
	if !d.NextArg() {
		return 0, d.ArgErr()
	}
	size, err := humanize.ParseBytes(d.Val())
	if err != nil {
		return 0, d.Errf("parsing %s %q: %v", opt, d.Val(), err)
	}
	if size == 0 || size > max {
		return 0, d.Errf("%s %q must be between 1 byte and %s", opt, d.Val(), maxText)
	}
	if d.NextArg() {
		return 0, d.ArgErr()
	}
	return size, nil
}

// countArg reads the current option's one argument: a whole number from 1
// to 2^20.
func countArg(d *caddyfile.Dispenser) (int, error) {
	opt := d.Val()
	if !d.NextArg() {
		return 0, d.ArgErr()
	}
	n, err := strconv.Atoi(d.Val())
	if err != nil || n < 1 || n > 1<<20 {
		return 0, d.Errf("%s %q must be a whole number between 1 and %d", opt, d.Val(), 1<<20)
	}
	if d.NextArg() {
		return 0, d.ArgErr()
	}
	return n, nil
}

func parseCaddyfile(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	var handler Handler
	err := handler.UnmarshalCaddyfile(h.Dispenser)
	return &handler, err
}
