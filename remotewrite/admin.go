package remotewrite

import (
	"net/http"
	"slices"
	"strings"

	"github.com/caddyserver/caddy/v2"

	"github.com/prom-tenant/caddy-prom-tenant/internal/adminjson"
)

func init() {
	caddy.RegisterModule(adminAPI{})
}

// adminAPI serves the state of every running copier on Caddy's admin
// endpoint: metadata and counters, never series data.
//
//	curl localhost:2019/prom_tenant/copiers
//	curl 'localhost:2019/prom_tenant/copiers?namespace=team-a'
//
// Its routes sit with prom-tenant's others (/prom_tenant/tenants,
// /prom_tenant/backends); /prom_remote_write/status, the first path, still
// answers.
type adminAPI struct{}

// CaddyModule returns the Caddy module information.
func (adminAPI) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "admin.api.prom_remote_write",
		New: func() caddy.Module { return adminAPI{} },
	}
}

// Routes returns the admin routes.
func (a adminAPI) Routes() []caddy.AdminRoute {
	h := adminjson.Get(a.status)
	return []caddy.AdminRoute{{Pattern: "/prom_tenant/copiers", Handler: h}, {Pattern: "/prom_remote_write/status", Handler: h}}
}

func (adminAPI) status(r *http.Request) (any, error) {
	ns := r.URL.Query().Get("namespace")
	out := []Status{}
	process.copiers.Range(func(_, v any) bool {
		if s := v.(*copier).Status(); ns == "" || s.Namespace == ns {
			out = append(out, s)
		}
		return true
	})
	// During a reload two copiers of one object may run for a moment (old
	// and new settings); both are listed.
	slices.SortFunc(out, func(a, b Status) int {
		return strings.Compare(a.Namespace+"/"+a.Object+" "+a.Interval, b.Namespace+"/"+b.Object+" "+b.Interval)
	})
	return out, nil
}

// Interface guard.
var _ caddy.AdminRouter = adminAPI{}
