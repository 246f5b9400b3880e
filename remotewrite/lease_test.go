package remotewrite

import (
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

// Leader election is on exactly when the app has Kubernetes and no static
// shard; the combinations that make no sense are refused with the option
// to change.
func TestLeaderElectionDefault(t *testing.T) {
	t.Setenv("POD_NAMESPACE", "prom-tenant")
	kube := &KubernetesAccess{}
	for _, tc := range []struct {
		name     string
		app      *App
		electing bool
		err      string
	}{
		{"files only", &App{Shards: 1}, false, ""},
		{"kubernetes", &App{Shards: 1, Kubernetes: kube}, true, ""},
		{"kubernetes, static shards", &App{Shards: 3, Shard: 1, Kubernetes: kube}, false, ""},
		{"kubernetes, off", &App{Shards: 1, Kubernetes: kube, LeaderElection: &LeaderElection{Disabled: true}}, false, ""},
		{"block and shards", &App{Shards: 3, Kubernetes: kube, LeaderElection: &LeaderElection{}}, false, "shard and leader_election exclude each other"},
		{"block without kubernetes", &App{Shards: 1, LeaderElection: &LeaderElection{Namespace: "x"}}, false, "leader_election needs kubernetes"},
		{"bad durations", &App{Shards: 1, Kubernetes: kube, LeaderElection: &LeaderElection{LeaseDuration: caddy.Duration(5 * time.Second)}}, true,
			"lease_duration (5s) must be greater than renew_deadline (10s)"},
		{"retry too slow", &App{Shards: 1, Kubernetes: kube, LeaderElection: &LeaderElection{RetryPeriod: caddy.Duration(9 * time.Second)}}, true,
			"renew_deadline (10s) must be greater than 1.2 × retry_period (9s)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := tc.app
			a.Source, a.Interval, a.MaxWindow = "http://prometheus:9090", caddy.Duration(time.Minute), caddy.Duration(time.Minute)
			if got := a.provisionLeaderElection(); got != tc.electing {
				t.Errorf("electing = %v, want %v", got, tc.electing)
			}
			err := a.Validate()
			switch {
			case tc.err == "" && err != nil:
				t.Errorf("Validate: %v", err)
			case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
				t.Errorf("Validate: %v, want %q", err, tc.err)
			}
			if tc.electing && tc.err == "" {
				le := a.LeaderElection
				if le.Namespace != "prom-tenant" || le.NamePrefix != "prom-tenant-copy" || le.Leases != 4 ||
					le.LeaseDuration != caddy.Duration(15*time.Second) || le.RenewDeadline != caddy.Duration(10*time.Second) ||
					le.RetryPeriod != caddy.Duration(2*time.Second) || le.Identity != defaultIdentity() || le.Identity == "" {
					t.Errorf("defaults: %+v", le)
				}
			}
		})
	}
}

// Without a pod's namespace, leader election is refused rather than
// guessing where the Leases live.
func TestLeaderElectionNeedsNamespace(t *testing.T) {
	t.Setenv("POD_NAMESPACE", "")
	a := &App{Source: "http://p:9090", Shards: 1, Interval: caddy.Duration(time.Minute), MaxWindow: caddy.Duration(time.Minute), Kubernetes: &KubernetesAccess{}}
	a.provisionLeaderElection()
	if a.LeaderElection.Namespace != "" {
		t.Skip("running in a pod: the service account names a namespace")
	}
	if err := a.Validate(); err == nil || !strings.Contains(err.Error(), "set leader_election { namespace <ns> }, or leader_election off") {
		t.Errorf("Validate: %v", err)
	}
}

// Tenants are spread over the Leases by namespace, the same on every
// replica.
func TestLeaseOf(t *testing.T) {
	le := &LeaderElection{Leases: 4, NamePrefix: "p"}
	seen := map[int]bool{}
	for _, ns := range []string{"a", "b", "c", "d", "e", "f", "g", "h", "team-a", "team-b"} {
		i := le.leaseOf(ns)
		if i != le.leaseOf(ns) || i < 0 || i >= 4 {
			t.Fatalf("leaseOf(%s) = %d", ns, i)
		}
		seen[i] = true
	}
	if len(seen) < 2 {
		t.Errorf("ten namespaces all in one Lease: %v", seen)
	}
	if le.leaseName(3) != "p-3" {
		t.Errorf("leaseName(3) = %s", le.leaseName(3))
	}
}

func TestLeaderElectionCaddyfile(t *testing.T) {
	parse := func(in string) (*App, error) {
		a := new(App)
		err := a.UnmarshalCaddyfile(caddyfile.NewTestDispenser(in))
		return a, err
	}
	a, err := parse(`prom_remote_write http://p {
		leader_election {
			namespace ops
			name_prefix copy
			leases 8
			lease_duration 30s
			renew_deadline 20s
			retry_period 4s
			identity replica-a
		}
	}`)
	if err != nil {
		t.Fatal(err)
	}
	want := LeaderElection{Namespace: "ops", NamePrefix: "copy", Leases: 8, LeaseDuration: caddy.Duration(30 * time.Second),
		RenewDeadline: caddy.Duration(20 * time.Second), RetryPeriod: caddy.Duration(4 * time.Second), Identity: "replica-a"}
	if *a.LeaderElection != want {
		t.Errorf("parsed %+v", *a.LeaderElection)
	}
	if a, err = parse("prom_remote_write http://p {\n\tleader_election off\n}"); err != nil || !a.LeaderElection.Disabled {
		t.Errorf("off: %+v, %v", a.LeaderElection, err)
	}
	for in, msg := range map[string]string{
		"prom_remote_write http://p {\n\tleader_election on\n}":                         "takes no argument but off",
		"prom_remote_write http://p {\n\tleader_election {\n\t\tleases 0\n\t}\n}":       "leases must be a positive integer",
		"prom_remote_write http://p {\n\tleader_election {\n\t\tretry_period x\n\t}\n}": `parsing retry_period "x"`,
		"prom_remote_write http://p {\n\tleader_election {\n\t\tbogus 1\n\t}\n}":        `unrecognized leader_election subdirective "bogus"`,
		"prom_remote_write http://p {\n\tleader_election off\n\tleader_election off\n}": "leader_election already specified",
		"prom_remote_write http://p {\n\tleader_election off {\n\t\tleases 1\n\t}\n}":   "leader_election off takes no block",
	} {
		if _, err := parse(in); err == nil || !strings.Contains(err.Error(), msg) {
			t.Errorf("%q: %v, want %q", in, err, msg)
		}
	}
}
