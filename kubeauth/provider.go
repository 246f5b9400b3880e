package kubeauth

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp/caddyauth"
	"go.uber.org/zap"
	"k8s.io/client-go/kubernetes"

	"github.com/prom-tenant/caddy-prom-tenant/internal/promapi"
)

func init() {
	caddy.RegisterModule(Provider{})
}

// Interface guards.
var (
	_ caddy.Provisioner       = (*Provider)(nil)
	_ caddy.CleanerUpper      = (*Provider)(nil)
	_ caddyauth.Authenticator = (*Provider)(nil)
)

// Provider is the same check as the authenticate_kubernetes handler, as a
// provider of Caddy's `authentication` handler (JSON config:
// {"handler":"authentication","providers":{"kubernetes":{...}}}). Caddy's
// handler answers every failure with a bare 401, so a missing permission or
// an API server outage is a 401 here too (still refused), with no JSON
// envelope; prefer the handler, which answers 401/403/503 in Prometheus's
// envelope. On success Caddy sets {http.auth.user.id} and
// {http.auth.user.namespace}; the namespace is also in
// {http.vars.prom_tenant.namespace}.
type Provider struct {
	Config

	rv     *reviewer
	client kubernetes.Interface
	logger *zap.Logger
}

// CaddyModule returns the Caddy module information.
func (Provider) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.authentication.providers.kubernetes",
		New: func() caddy.Module { return new(Provider) },
	}
}

// Provision builds the API client; it does no network I/O.
func (p *Provider) Provision(ctx caddy.Context) error {
	p.logger = ctx.Logger()
	rv, err := newReviewer(&p.Config, p.client, p.logger, nil)
	if err != nil {
		return fmt.Errorf("kubernetes authentication: %w", err)
	}
	p.rv = rv
	return nil
}

// Cleanup releases the caches.
func (p *Provider) Cleanup() error {
	p.rv = nil
	return nil
}

// Authenticate implements caddyauth.Authenticator.
func (p *Provider) Authenticate(w http.ResponseWriter, r *http.Request) (caddyauth.User, bool, error) {
	res, err := authorizeRequest(p.rv, &p.Config, r)
	var re *promapi.Error
	switch {
	case err == nil:
		return caddyauth.User{ID: res.user.Username, Metadata: map[string]string{"namespace": res.namespace}}, true, nil
	case errors.As(err, &re) && re.Refusal != promapi.AuthUnavailable:
		p.logger.Debug("refused", zap.Int("status", re.Status), zap.String("reason", re.Message))
		if re.Status == http.StatusUnauthorized {
			w.Header().Set("WWW-Authenticate", `Bearer realm="prom-tenant"`)
		}
		return caddyauth.User{}, false, nil
	default:
		return caddyauth.User{}, false, err // Caddy refuses with 401
	}
}
