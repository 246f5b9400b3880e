package kubeauth

import (
	"strconv"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

func init() {
	httpcaddyfile.RegisterHandlerDirective("authenticate_kubernetes", parseCaddyfile)
	// Right after basic_auth: before prom_tenant (which is ordered before
	// reverse_proxy) and before any proxying. RegisterDirectiveOrder only
	// accepts directives of the standard distribution as anchors.
	httpcaddyfile.RegisterDirectiveOrder("authenticate_kubernetes", httpcaddyfile.After, "basic_auth")
}

// Interface guard.
var _ caddyfile.Unmarshaler = (*Handler)(nil)

// UnmarshalCaddyfile sets up the handler from Caddyfile tokens. Syntax:
//
//	authenticate_kubernetes [<matcher>] {
//	    kubeconfig        <path>
//	    namespace         <placeholder>
//	    resource_attributes {
//	        verb        <verb>
//	        group       <group>
//	        version     <version>
//	        resource    <resource>
//	        subresource <subresource>
//	        name        <name>
//	    }
//	    cache_ttl         <duration>
//	    denied_cache_ttl  <duration>
//	    cache_max_entries <n>
//	    timeout           <duration>
//	}
func (h *Handler) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // consume directive name
	if d.NextArg() {
		return d.ArgErr()
	}
	return h.Config.unmarshalCaddyfile(d)
}

func (c *Config) unmarshalCaddyfile(d *caddyfile.Dispenser) error {
	oneArg := func() (string, error) {
		if !d.NextArg() {
			return "", d.ArgErr()
		}
		v := d.Val()
		if d.NextArg() {
			return "", d.ArgErr()
		}
		return v, nil
	}
	duration := func() (caddy.Duration, error) {
		v, err := oneArg()
		if err != nil {
			return 0, err
		}
		dur, err := caddy.ParseDuration(v)
		if err != nil {
			return 0, d.Errf("parsing %s %q: %v", d.Val(), v, err)
		}
		return caddy.Duration(dur), nil
	}
	for d.NextBlock(0) {
		var err error
		switch d.Val() {
		case "kubeconfig":
			c.Kubeconfig, err = oneArg()
		case "namespace":
			c.Namespace, err = oneArg()
		case "resource_attributes":
			if d.NextArg() {
				return d.ArgErr()
			}
			a := &ResourceAttributes{}
			for nesting := d.Nesting(); d.NextBlock(nesting); {
				field := d.Val()
				v, err := oneArg()
				if err != nil {
					return err
				}
				switch field {
				case "verb":
					a.Verb = v
				case "group":
					a.Group = v
				case "version":
					a.Version = v
				case "resource":
					a.Resource = v
				case "subresource":
					a.Subresource = v
				case "name":
					a.Name = v
				default:
					return d.Errf("unrecognized resource_attributes field %q", field)
				}
			}
			if a.Verb == "" || a.Resource == "" {
				return d.Err("resource_attributes needs at least verb and resource")
			}
			c.ResourceAttributes = a
		case "cache_ttl":
			c.CacheTTL, err = duration()
		case "denied_cache_ttl":
			c.DeniedCacheTTL, err = duration()
		case "timeout":
			c.Timeout, err = duration()
			if err == nil && time.Duration(c.Timeout) <= 0 {
				err = d.Err("timeout must be positive")
			}
		case "cache_max_entries":
			var v string
			if v, err = oneArg(); err == nil {
				n, serr := strconv.Atoi(v)
				if serr != nil || n < 1 {
					return d.Errf("cache_max_entries %q must be a positive integer", v)
				}
				c.CacheMaxEntries = n
			}
		default:
			return d.Errf("unrecognized authenticate_kubernetes subdirective %q", d.Val())
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func parseCaddyfile(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	var handler Handler
	err := handler.UnmarshalCaddyfile(h.Dispenser)
	return &handler, err
}
