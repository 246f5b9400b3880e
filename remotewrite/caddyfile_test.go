package remotewrite

import (
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
)

// TestGlobalOption: this package registers its own global option, so a
// Caddyfile adapts to the prom_remote_write app with no other prom-tenant package.
func TestGlobalOption(t *testing.T) {
	out, _, err := caddyfile.Adapter{ServerType: httpcaddyfile.ServerType{}}.Adapt([]byte("{\n\tprom_remote_write http://prometheus:9090\n}\n"), nil)
	if want := `"apps":{"prom_remote_write":{"source":"http://prometheus:9090"}}`; err != nil || !strings.Contains(string(out), want) {
		t.Errorf("adapted to %s, %v; want it to hold %s", out, err, want)
	}
}

// Durations, of the app and of leader_election alike, are positive: 0
// would mean the default in JSON, so the Caddyfile refuses it, and says
// which option was wrong.
func TestCaddyfileDurations(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"interval 30s", `"interval":30000000000`},
		{"interval 0s", "interval must be positive, got 0s"},
		{"max_window soon", `parsing max_window "soon"`},
		{"interval", "wrong argument count"},
		{"leader_election {\n\t\trenew_deadline 5s\n\t}", `"renew_deadline":5000000000`},
		{"leader_election {\n\t\tretry_period -1s\n\t}", "retry_period must be positive, got -1s"},
		{"leader_election {\n\t\tlease_duration 1x\n\t}", `parsing lease_duration "1x"`},
	} {
		in := "{\n\tprom_remote_write http://prometheus:9090 {\n\t\t" + tc.in + "\n\t}\n}\n"
		out, _, err := caddyfile.Adapter{ServerType: httpcaddyfile.ServerType{}}.Adapt([]byte(in), nil)
		if got := string(out) + errString(err); !strings.Contains(got, tc.want) {
			t.Errorf("%q: got %s, want it to hold %s", tc.in, got, tc.want)
		}
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
