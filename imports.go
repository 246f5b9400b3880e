package promtenant

// The one registration list, as in caddy-l4: importing this package (xcaddy
// --with, cmd/caddy) registers every prom-tenant module. Each package
// registers its own modules, and its caddyfile.go its own directive or
// global option; this package adds the prom_tenant handler (module.go,
// caddyfile.go).
import (
	_ "github.com/prom-tenant/caddy-prom-tenant/discovery"   // upstreams kubernetes; its admin API
	_ "github.com/prom-tenant/caddy-prom-tenant/kubeauth"    // authenticate_kubernetes handler and provider
	_ "github.com/prom-tenant/caddy-prom-tenant/remotewrite" // the prom_remote_write app and global option; its admin API
	_ "github.com/prom-tenant/caddy-prom-tenant/tenancy"     // the prom_tenancy app and global option; its admin API
)
