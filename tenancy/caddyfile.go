package tenancy

import (
	"strconv"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
)

func init() {
	httpcaddyfile.RegisterGlobalOption(AppID, parseGlobalOption)
}

// parseGlobalOption parses the prom_tenancy global option into the app.
func parseGlobalOption(d *caddyfile.Dispenser, existing any) (any, error) {
	if existing != nil {
		return nil, d.Err("prom_tenancy is already set: give it once, with every source inside")
	}
	app := new(App)
	if err := app.UnmarshalCaddyfile(d); err != nil {
		return nil, err
	}
	return httpcaddyfile.App{Name: AppID, Value: caddyconfig.JSON(app, nil)}, nil
}

// UnmarshalCaddyfile sets up the app from the prom_tenancy global option:
//
//	prom_tenancy {
//	    directory <dir> {
//	        reload_interval <duration>
//	        empty_file_grace <duration>
//	    }
//	    kubernetes {
//	        kubeconfig <path>
//	        namespaces <namespace...>
//	    }
//	    max_patterns_per_namespace <n>
//	}
//
// The block after directory is optional; reload_interval defaults to 1s,
// empty_file_grace to 10s.
// kubernetes without kubeconfig uses the in-cluster configuration, and
// without namespaces watches all namespaces. max_patterns_per_namespace
// defaults to 1024.
func (a *App) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // consume option name
	if d.NextArg() {
		return d.ArgErr()
	}
	for d.NextBlock(0) {
		switch d.Val() {
		case "directory":
			if a.Directory != nil {
				return d.Err("directory already specified")
			}
			dir := new(DirectorySource)
			if !d.Args(&dir.Path) {
				return d.ArgErr()
			}
			if d.NextArg() {
				return d.ArgErr()
			}
			for nesting := d.Nesting(); d.NextBlock(nesting); {
				switch d.Val() {
				case "reload_interval":
					if err := positiveDuration(d, &dir.ReloadInterval); err != nil {
						return err
					}
				case "empty_file_grace":
					if err := positiveDuration(d, &dir.EmptyFileGrace); err != nil {
						return err
					}
				default:
					return d.Errf("unrecognized subdirective %q", d.Val())
				}
			}
			a.Directory = dir
		case "kubernetes":
			if a.Kubernetes != nil {
				return d.Err("kubernetes already specified")
			}
			if d.NextArg() {
				return d.ArgErr()
			}
			k := new(KubernetesSource)
			for nesting := d.Nesting(); d.NextBlock(nesting); {
				switch d.Val() {
				case "kubeconfig":
					if !d.Args(&k.Kubeconfig) || d.NextArg() {
						return d.ArgErr()
					}
				case "namespaces":
					k.Namespaces = append(k.Namespaces, d.RemainingArgs()...)
					if len(k.Namespaces) == 0 {
						return d.ArgErr()
					}
				default:
					return d.Errf("unrecognized kubernetes subdirective %q", d.Val())
				}
			}
			a.Kubernetes = k
		case "max_patterns_per_namespace":
			if !d.NextArg() {
				return d.ArgErr()
			}
			n, err := strconv.Atoi(d.Val())
			if err != nil || n <= 0 {
				return d.Errf("max_patterns_per_namespace must be a positive integer, got %q", d.Val())
			}
			a.MaxPatternsPerNamespace = n
			if d.NextArg() {
				return d.ArgErr()
			}
		default:
			return d.Errf("unrecognized subdirective %q", d.Val())
		}
	}
	return nil
}

// positiveDuration reads the option's one argument, a positive duration,
// into v.
func positiveDuration(d *caddyfile.Dispenser, v *caddy.Duration) error {
	name := d.Val()
	if !d.NextArg() {
		return d.ArgErr()
	}
	dur, err := caddy.ParseDuration(d.Val())
	if err != nil {
		return d.Errf("parsing %s: %v", name, err)
	}
	if dur <= 0 {
		return d.Errf("%s must be positive, got %s", name, d.Val())
	}
	*v = caddy.Duration(dur)
	if d.NextArg() {
		return d.ArgErr()
	}
	return nil
}

// Interface guard.
var _ caddyfile.Unmarshaler = (*App)(nil)
