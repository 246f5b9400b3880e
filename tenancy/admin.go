package tenancy

import (
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/caddyserver/caddy/v2"

	"github.com/prom-tenant/caddy-prom-tenant/internal/adminjson"
	"github.com/prom-tenant/caddy-prom-tenant/tenancy/v1alpha1"
)

func init() {
	caddy.RegisterModule(adminAPI{})
}

// adminAPI serves what the running prom_tenancy app knows of its tenants on
// Caddy's admin endpoint: namespaces, their MetricAccess objects and where
// they come from, the compiled policies, and what is rejected and why.
// Metadata only, never series data.
//
//	curl localhost:2019/prom_tenant/tenants
//	curl 'localhost:2019/prom_tenant/tenants?namespace=team-a'
type adminAPI struct{}

// CaddyModule returns the Caddy module information.
func (adminAPI) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "admin.api.prom_tenancy",
		New: func() caddy.Module { return adminAPI{} },
	}
}

// Routes returns the admin routes.
func (a adminAPI) Routes() []caddy.AdminRoute {
	return []caddy.AdminRoute{{Pattern: "/prom_tenant/tenants", Handler: adminjson.Get(a.tenants)}}
}

// TenantsView is the answer of GET /prom_tenant/tenants.
type TenantsView struct {
	// EqualityMatchers is how a pattern's name="value" is read, and how
	// to write the other reading (EqualityReading).
	EqualityMatchers string `json:"equality_matchers"`
	// Tenants are the namespaces with objects, in force or not, sorted.
	Tenants []TenantView `json:"tenants"`
	// Files are the manifest files rejected as a whole, or whose current
	// content is rejected (a file keeps its last good version): which
	// namespaces they concern is not known, so they are listed in every
	// answer, with ?namespace too.
	Files []Rejection `json:"files"`
}

// TenantView is one namespace.
type TenantView struct {
	Namespace string `json:"namespace"`
	// InForce is whether the namespace is a tenant: its objects allow
	// something, and its requests are served.
	InForce bool `json:"in_force"`
	// Selectors are the compiled policy: a series is visible iff it matches
	// one of them. Empty when not in force.
	Selectors []string `json:"selectors"`
	// Objects are the namespace's MetricAccess objects, sorted by name.
	Objects []ObjectView `json:"objects"`
	// Compiling is whether the namespace's current objects are still being
	// compiled; meanwhile its previous policy, if any, is in force and listed.
	Compiling bool `json:"compiling,omitempty"`
}

// ObjectView is one MetricAccess object.
type ObjectView struct {
	Name string `json:"name"`
	// Source is the manifest file's path, or "kubernetes".
	Source  string `json:"source"`
	InForce bool   `json:"in_force"`
	// RemoteWrite is whether the object copies its series (prom_remote_write).
	RemoteWrite bool `json:"remote_write,omitempty"`
	// Reason and Error say why an object is not in force.
	Reason string `json:"reason,omitempty"`
	Error  string `json:"error,omitempty"`
	// Warnings name the object's equality matchers whose values look like
	// regular expressions: they are in force, read literally.
	Warnings []string `json:"warnings,omitempty"`
}

func (adminAPI) tenants(r *http.Request) (any, error) {
	a := serving()
	if a == nil {
		return nil, caddy.APIError{HTTPStatus: http.StatusNotFound, Err: fmt.Errorf("no %s app is running", AppID)}
	}
	return a.View(r.URL.Query().Get("namespace")), nil
}

// View returns the app's tenants and rejections; with namespace, only that
// namespace's (files rejected as a whole are always listed).
func (a *App) View(namespace string) TenantsView {
	byNS := map[string]*TenantView{}
	get := func(ns string) *TenantView {
		v, ok := byNS[ns]
		if !ok {
			v = &TenantView{Namespace: ns, Selectors: []string{}, Objects: []ObjectView{}}
			byNS[ns] = v
		}
		return v
	}
	for _, t := range a.Registry().Tenants() {
		if namespace != "" && t.Namespace != namespace {
			continue
		}
		v := get(t.Namespace)
		v.InForce = true
		for _, b := range t.Policy.Branches() {
			v.Selectors = append(v.Selectors, b.String())
		}
		for _, o := range t.Objects {
			rw := slices.ContainsFunc(t.RemoteWrites, func(rw *RemoteWrite) bool { return rw.Object == o })
			v.Objects = append(v.Objects, ObjectView{Name: o.Name, Source: o.Source, InForce: true, RemoteWrite: rw, Warnings: t.Warnings[o.Name]})
		}
	}
	if a.tenants != nil {
		for ns := range a.tenants.compilingNamespaces() {
			if namespace == "" || ns == namespace {
				get(ns).Compiling = true
			}
		}
	}
	out := TenantsView{EqualityMatchers: v1alpha1.EqualityReading, Tenants: []TenantView{}, Files: []Rejection{}}
	for _, rej := range a.Rejections() {
		switch {
		case rej.Namespace == "":
			out.Files = append(out.Files, rej)
		case namespace == "" || rej.Namespace == namespace:
			v := get(rej.Namespace)
			v.Objects = append(v.Objects, ObjectView{Name: rej.Name, Source: rej.Source, Reason: rej.Reason, Error: rej.Error})
		}
	}
	for _, v := range byNS {
		slices.SortStableFunc(v.Objects, func(x, y ObjectView) int { return strings.Compare(x.Name, y.Name) })
		out.Tenants = append(out.Tenants, *v)
	}
	slices.SortFunc(out.Tenants, func(x, y TenantView) int { return strings.Compare(x.Namespace, y.Namespace) })
	return out
}

// Interface guard.
var _ caddy.AdminRouter = adminAPI{}
