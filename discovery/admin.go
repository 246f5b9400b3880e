package discovery

import (
	"net/http"

	"github.com/caddyserver/caddy/v2"

	"github.com/prom-tenant/caddy-prom-tenant/internal/adminjson"
)

func init() {
	caddy.RegisterModule(adminAPI{})
}

// adminAPI lists the backends of every kubernetes upstream source on
// Caddy's admin endpoint: addresses, readiness and probe state.
//
//	curl localhost:2019/prom_tenant/backends
type adminAPI struct{}

// CaddyModule returns the Caddy module information.
func (adminAPI) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "admin.api.prom_tenant_backends",
		New: func() caddy.Module { return adminAPI{} },
	}
}

// Routes returns the admin routes.
func (a adminAPI) Routes() []caddy.AdminRoute {
	return []caddy.AdminRoute{{Pattern: "/prom_tenant/backends", Handler: adminjson.Get(a.backends)}}
}

func (adminAPI) backends(*http.Request) (any, error) {
	return struct {
		Sources []SourceView `json:"sources"`
	}{views()}, nil
}

// Interface guard.
var _ caddy.AdminRouter = adminAPI{}
