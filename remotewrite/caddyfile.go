package remotewrite

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

// parseGlobalOption parses the prom_remote_write global option into the app.
func parseGlobalOption(d *caddyfile.Dispenser, existing any) (any, error) {
	if existing != nil {
		return nil, d.Err("prom_remote_write is already set: give it once")
	}
	app := new(App)
	if err := app.UnmarshalCaddyfile(d); err != nil {
		return nil, err
	}
	return httpcaddyfile.App{Name: AppID, Value: caddyconfig.JSON(app, nil)}, nil
}

// UnmarshalCaddyfile sets up the app from the prom_remote_write global
// option:
//
//	prom_remote_write {
//	    source              <url>
//	    source_timeout      <duration>
//	    interval            <duration>
//	    read_delay          <duration>
//	    initial_lookback    <duration>
//	    max_window          <duration>
//	    batch_size          <n>
//	    max_in_flight       <n>
//	    max_pending_samples <n>
//	    max_copies_per_tenant <n>
//	    timeout             <duration>
//	    retries             <n>
//	    state_dir           <dir>
//	    allow_url           <url...>
//	    service_address     <host:port template>
//	    credentials_dir     <dir>
//	    tenant_header       <header name>
//	    kubernetes {
//	        kubeconfig <path>
//	    }
//	    shard               <index> <count>
//	    leader_election     off
//	    leader_election {
//	        namespace      <namespace>
//	        name_prefix    <prefix>
//	        leases         <n>
//	        lease_duration <duration>
//	        renew_deadline <duration>
//	        retry_period   <duration>
//	        identity       <name>
//	    }
//	}
//
// source may also be given as the option's argument:
// `prom_remote_write http://prometheus:9090`.
func (a *App) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // consume option name
	if d.NextArg() {
		a.Source = d.Val()
		if d.NextArg() {
			return d.ArgErr()
		}
	}
	for d.NextBlock(0) {
		name := d.Val()
		switch name {
		case "source":
			if err := oneArg(d, &a.Source); err != nil {
				return err
			}
		case "state_dir":
			if err := oneArg(d, &a.StateDir); err != nil {
				return err
			}
		case "service_address":
			if err := oneArg(d, &a.ServiceAddress); err != nil {
				return err
			}
		case "credentials_dir":
			if err := oneArg(d, &a.CredentialsDir); err != nil {
				return err
			}
		case "tenant_header":
			if err := oneArg(d, &a.TenantHeader); err != nil {
				return err
			}
		case "source_timeout", "interval", "read_delay", "initial_lookback", "max_window", "timeout":
			dur, err := positiveDuration(d, name)
			if err != nil {
				return err
			}
			*map[string]*caddy.Duration{
				"source_timeout": &a.SourceTimeout, "interval": &a.Interval, "read_delay": &a.ReadDelay,
				"initial_lookback": &a.InitialLookback, "max_window": &a.MaxWindow, "timeout": &a.Timeout,
			}[name] = dur
		case "batch_size", "max_in_flight", "max_pending_samples", "max_copies_per_tenant":
			n, err := positiveInt(d, name)
			if err != nil {
				return err
			}
			*map[string]*int{
				"batch_size": &a.BatchSize, "max_in_flight": &a.MaxInFlight,
				"max_pending_samples": &a.MaxPendingSamples, "max_copies_per_tenant": &a.MaxCopiesPerTenant,
			}[name] = n
		case "retries":
			var raw string
			if err := oneArg(d, &raw); err != nil {
				return err
			}
			n, err := strconv.Atoi(raw)
			if err != nil || n < 0 {
				return d.Errf("retries must be a non-negative integer, got %q", raw)
			}
			a.Retries = &n
		case "allow_url":
			args := d.RemainingArgs()
			if len(args) == 0 {
				return d.ArgErr()
			}
			a.AllowURLs = append(a.AllowURLs, args...)
		case "kubernetes":
			if a.Kubernetes != nil {
				return d.Err("kubernetes already specified")
			}
			if d.NextArg() {
				return d.ArgErr()
			}
			a.Kubernetes = new(KubernetesAccess)
			for nesting := d.Nesting(); d.NextBlock(nesting); {
				switch d.Val() {
				case "kubeconfig":
					if err := oneArg(d, &a.Kubernetes.Kubeconfig); err != nil {
						return err
					}
				default:
					return d.Errf("unrecognized kubernetes subdirective %q", d.Val())
				}
			}
		case "shard":
			var idx, count string
			if !d.Args(&idx, &count) || d.NextArg() {
				return d.Errf("shard takes two arguments: <index> <count>")
			}
			i, err1 := strconv.Atoi(idx)
			n, err2 := strconv.Atoi(count)
			if err1 != nil || err2 != nil || n < 1 || i < 0 || i >= n {
				return d.Errf("shard %s %s: want 0 <= index < count", idx, count)
			}
			a.Shard, a.Shards = i, n
		case "leader_election":
			if a.LeaderElection != nil {
				return d.Err("leader_election already specified")
			}
			a.LeaderElection = new(LeaderElection)
			if err := a.LeaderElection.unmarshalCaddyfile(d); err != nil {
				return err
			}
		default:
			return d.Errf("unrecognized prom_remote_write subdirective %q", name)
		}
	}
	return nil
}

// unmarshalCaddyfile parses `leader_election off` or its block.
func (le *LeaderElection) unmarshalCaddyfile(d *caddyfile.Dispenser) error {
	if d.NextArg() {
		if d.Val() != "off" || d.NextArg() {
			return d.Errf("leader_election takes no argument but off, or a block")
		}
		le.Disabled = true
		if d.NextBlock(d.Nesting()) {
			return d.Err("leader_election off takes no block")
		}
		return nil
	}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		name := d.Val()
		switch name {
		case "namespace":
			if err := oneArg(d, &le.Namespace); err != nil {
				return err
			}
		case "name_prefix":
			if err := oneArg(d, &le.NamePrefix); err != nil {
				return err
			}
		case "identity":
			if err := oneArg(d, &le.Identity); err != nil {
				return err
			}
		case "leases":
			n, err := positiveInt(d, name)
			if err != nil {
				return err
			}
			le.Leases = n
		case "lease_duration", "renew_deadline", "retry_period":
			dur, err := positiveDuration(d, name)
			if err != nil {
				return err
			}
			*map[string]*caddy.Duration{
				"lease_duration": &le.LeaseDuration, "renew_deadline": &le.RenewDeadline, "retry_period": &le.RetryPeriod,
			}[name] = dur
		default:
			return d.Errf("unrecognized leader_election subdirective %q", name)
		}
	}
	return nil
}

// oneArg reads exactly one argument into dst.
func oneArg(d *caddyfile.Dispenser, dst *string) error {
	if !d.NextArg() {
		return d.ArgErr()
	}
	*dst = d.Val()
	if d.NextArg() {
		return d.ArgErr()
	}
	return nil
}

func positiveInt(d *caddyfile.Dispenser, name string) (int, error) {
	var raw string
	if err := oneArg(d, &raw); err != nil {
		return 0, err
	}
	n, err := strconv.Atoi(raw)
	if err != nil || n <= 0 {
		return 0, d.Errf("%s must be a positive integer, got %q", name, raw)
	}
	return n, nil
}

// positiveDuration reads the option's one argument, a duration above 0: 0
// means the default in JSON; in the Caddyfile, the line is left out.
func positiveDuration(d *caddyfile.Dispenser, name string) (caddy.Duration, error) {
	var raw string
	if err := oneArg(d, &raw); err != nil {
		return 0, err
	}
	dur, err := caddy.ParseDuration(raw)
	if err != nil {
		return 0, d.Errf("parsing %s %q: %v", name, raw, err)
	}
	if dur <= 0 {
		return 0, d.Errf("%s must be positive, got %s", name, raw)
	}
	return caddy.Duration(dur), nil
}

// Interface guard.
var _ caddyfile.Unmarshaler = (*App)(nil)
