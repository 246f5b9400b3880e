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
