package kubeauth

import (
	"errors"
	"fmt"
	"net/http"
	"regexp"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"
	"k8s.io/client-go/kubernetes"

	"github.com/prom-tenant/caddy-prom-tenant/internal/promapi"
)

func init() {
	caddy.RegisterModule(Handler{})
}

// Interface guards.
var (
	_ caddy.Provisioner           = (*Handler)(nil)
	_ caddy.CleanerUpper          = (*Handler)(nil)
	_ caddyhttp.MiddlewareHandler = (*Handler)(nil)
)

// Handler is the `authenticate_kubernetes` handler: it authenticates the
// request's bearer token with a TokenReview and authorizes the requested
// namespace with a SubjectAccessReview, then hands the authorized namespace
// on as {http.vars.prom_tenant.namespace} (and the user as
// {http.auth.user.id}). Refusals are written in Prometheus's JSON error
// envelope: 401 for a missing or invalid token, 403 for a missing
// permission, 503 when the API server cannot answer (never allowed).
type Handler struct {
	Config

	rv     *reviewer
	client kubernetes.Interface // tests inject a fake
	logger *zap.Logger
}

// CaddyModule returns the Caddy module information.
func (Handler) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.authenticate_kubernetes",
		New: func() caddy.Module { return new(Handler) },
	}
}

// Provision builds the API client; it does no network I/O.
func (h *Handler) Provision(ctx caddy.Context) error {
	h.logger = ctx.Logger()
	rv, err := newReviewer(&h.Config, h.client, h.logger, nil)
	if err != nil {
		return fmt.Errorf("authenticate_kubernetes: %w", err)
	}
	h.rv = rv
	return nil
}

// Cleanup releases the caches.
func (h *Handler) Cleanup() error {
	h.rv = nil
	return nil
}

// ServeHTTP authorizes the request, then calls next.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	if _, err := authorizeRequest(h.rv, &h.Config, r); err != nil {
		var re *promapi.Error
		if !errors.As(err, &re) {
			return err
		}
		h.logger.Debug("refused", zap.String("path", r.URL.Path), zap.Int("status", re.Status), zap.String("reason", re.Message))
		writeError(w, re)
		return nil
	}
	return next.ServeHTTP(w, r)
}

// headerPlaceholder matches a namespace placeholder that is one request header.
var headerPlaceholder = regexp.MustCompile(`^\{http\.request\.header\.([A-Za-z0-9!#$%&'*+.^_` + "`" + `|~-]+)\}$`)

// authorizeRequest reads the token and the namespace of r, reviews them, and
// on success records the result where later handlers read it: the var
// prom_tenant.namespace, the placeholders http.auth.user.id and
// http.auth.user.namespace, and, when the namespace comes from a request
// header, that header (so prom_tenant's default reads the authorized value
// too). The Authorization header is removed so the token does not reach the
// upstream.
func authorizeRequest(rv *reviewer, c *Config, r *http.Request) (*result, error) {
	if rv == nil {
		return nil, fmt.Errorf("kubernetes authentication is not provisioned")
	}
	repl, _ := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
	if repl == nil {
		return nil, fmt.Errorf("no replacer in request context")
	}
	token, err := bearerToken(r.Header)
	if err != nil {
		return nil, err
	}
	res, err := rv.review(r.Context(), token, repl.ReplaceAll(c.Namespace, ""))
	if err != nil {
		return nil, err
	}
	r.Header.Del("Authorization")
	if m := headerPlaceholder.FindStringSubmatch(c.Namespace); m != nil {
		r.Header.Set(m[1], res.namespace)
	}
	caddyhttp.SetVar(r.Context(), NamespaceVar, res.namespace)
	repl.Set("http.auth.user.id", res.user.Username)
	repl.Set("http.auth.user.namespace", res.namespace)
	if extra, ok := r.Context().Value(caddyhttp.ExtraLogFieldsCtxKey).(*caddyhttp.ExtraLogFields); ok {
		extra.Add(zap.String("user", res.user.Username))
	}
	return res, nil
}

func writeError(w http.ResponseWriter, e *promapi.Error) {
	if e.Status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="prom-tenant"`)
	}
	e.Write(w)
}
