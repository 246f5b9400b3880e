package discovery

import (
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/caddyserver/caddy/v2"
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
	return []caddy.AdminRoute{{Pattern: "/prom_tenant/backends", Handler: caddy.AdminHandlerFunc(a.backends)}}
}

func (adminAPI) backends(w http.ResponseWriter, r *http.Request) error {
	if r.Method != http.MethodGet {
		return caddy.APIError{HTTPStatus: http.StatusMethodNotAllowed, Err: fmt.Errorf("method %s not allowed: use GET", r.Method)}
	}
	w.Header().Set("Content-Type", "application/json")
	return json.NewEncoder(w).Encode(struct {
		Sources []SourceView `json:"sources"`
	}{views()})
}

// Interface guard.
var _ caddy.AdminRouter = adminAPI{}
