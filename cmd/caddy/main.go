// Command caddy is Caddy with the standard modules and every prom-tenant
// module, for users who build without xcaddy (`make build` → bin/caddy).
package main

import (
	caddycmd "github.com/caddyserver/caddy/v2/cmd"

	_ "github.com/caddyserver/caddy/v2/modules/standard"

	_ "github.com/prom-tenant/caddy-prom-tenant"
)

func main() {
	caddycmd.Main()
}
