package kubeauth

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"
	authnv1 "k8s.io/api/authentication/v1"
	authzv1 "k8s.io/api/authorization/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/kubernetes"

	"github.com/prom-tenant/caddy-prom-tenant/internal/kubeclient"
	"github.com/prom-tenant/caddy-prom-tenant/internal/promapi"
)

// Defaults of Config.
const (
	DefaultNamespace       = "{http.request.header.X-Tenant-Namespace}"
	DefaultCacheTTL        = 30 * time.Second
	DefaultDeniedCacheTTL  = 5 * time.Second
	DefaultCacheMaxEntries = 10000
	DefaultTimeout         = 5 * time.Second

	// NamespaceVar is the name of the request variable holding the authorized
	// namespace: {http.vars.prom_tenant.namespace}.
	NamespaceVar = "prom_tenant.namespace"
)

// ResourceAttributes are what the user must be allowed to do in the requested
// namespace, checked with a SubjectAccessReview. Default: get pods in the
// group metrics.k8s.io, as OpenShift's tenancy port of Prometheus checks.
type ResourceAttributes struct {
	Verb        string `json:"verb,omitempty"`
	Group       string `json:"group,omitempty"`
	Version     string `json:"version,omitempty"`
	Resource    string `json:"resource,omitempty"`
	Subresource string `json:"subresource,omitempty"`
	Name        string `json:"name,omitempty"`
}

// String names the permission as kubectl auth can-i would: "get pods.metrics.k8s.io".
func (a ResourceAttributes) String() string {
	s := a.Verb + " " + a.Resource
	if a.Subresource != "" {
		s += "/" + a.Subresource
	}
	if a.Group != "" {
		s += "." + a.Group
	}
	if a.Name != "" {
		s += " " + a.Name
	}
	return s
}

// Config is shared by the handler and the authentication provider.
type Config struct {
	// Kubeconfig is the path of a kubeconfig file for the API server that
	// reviews tokens. Its identity needs `create` on tokenreviews and
	// subjectaccessreviews (the ClusterRole system:auth-delegator).
	// Default: the in-cluster configuration.
	Kubeconfig string `json:"kubeconfig,omitempty"`

	// Namespace is where the requested tenant namespace is read from, usually
	// a placeholder. It is the one place the namespace comes from: the value
	// authorized here is handed on as {http.vars.prom_tenant.namespace}.
	// Default: {http.request.header.X-Tenant-Namespace}.
	Namespace string `json:"namespace,omitempty"`

	// ResourceAttributes the user needs in the namespace. Default: get pods
	// in group metrics.k8s.io.
	ResourceAttributes *ResourceAttributes `json:"resource_attributes,omitempty"`

	// CacheTTL is how long a successful TokenReview and an allowing
	// SubjectAccessReview are reused. Default: 30s. Negative disables caching.
	CacheTTL caddy.Duration `json:"cache_ttl,omitempty"`

	// DeniedCacheTTL is how long a failed TokenReview or a denying
	// SubjectAccessReview is reused: short, so that a new RoleBinding takes
	// effect soon. Default: 5s, and never longer than CacheTTL. Negative
	// disables caching of denials.
	DeniedCacheTTL caddy.Duration `json:"denied_cache_ttl,omitempty"`

	// CacheMaxEntries bounds each of the two caches. Default: 10000.
	CacheMaxEntries int `json:"cache_max_entries,omitempty"`

	// Timeout bounds each call to the API server. Default: 5s.
	Timeout caddy.Duration `json:"timeout,omitempty"`
}

// user is the identity a TokenReview returned; nil in the cache means the
// token was not authenticated.
type user struct {
	Username string
	UID      string
	Groups   []string
	Extra    map[string]authnv1.ExtraValue
}

// result is an authorized request.
type result struct {
	user      *user
	namespace string
}

// reviewer authenticates tokens and authorizes namespaces, with caches.
type reviewer struct {
	client         kubernetes.Interface
	attrs          ResourceAttributes
	ttl, deniedTTL time.Duration
	timeout        time.Duration
	hashKey        []byte
	tokens         *ttlCache[*user]
	access         *ttlCache[bool]
	logger         *zap.Logger
}

// newReviewer applies the defaults of c and builds a reviewer. With client
// nil it builds one from the kubeconfig or the in-cluster configuration; it
// does no network I/O either way.
func newReviewer(c *Config, client kubernetes.Interface, logger *zap.Logger, now func() time.Time) (*reviewer, error) {
	if c.Namespace == "" {
		c.Namespace = DefaultNamespace
	}
	if c.ResourceAttributes == nil {
		c.ResourceAttributes = &ResourceAttributes{Verb: "get", Group: "metrics.k8s.io", Resource: "pods"}
	}
	if c.ResourceAttributes.Verb == "" || c.ResourceAttributes.Resource == "" {
		return nil, fmt.Errorf("resource_attributes needs a verb and a resource")
	}
	if c.CacheTTL == 0 {
		c.CacheTTL = caddy.Duration(DefaultCacheTTL)
	}
	if c.DeniedCacheTTL == 0 {
		c.DeniedCacheTTL = caddy.Duration(min(DefaultDeniedCacheTTL, time.Duration(c.CacheTTL)))
	}
	if c.CacheMaxEntries == 0 {
		c.CacheMaxEntries = DefaultCacheMaxEntries
	}
	if c.CacheMaxEntries < 0 {
		return nil, fmt.Errorf("cache_max_entries must not be negative")
	}
	if c.Timeout == 0 {
		c.Timeout = caddy.Duration(DefaultTimeout)
	}
	if client == nil {
		cfg, err := kubeclient.Config(c.Kubeconfig, "prom-tenant-kubeauth")
		if err != nil {
			return nil, err
		}
		if client, err = kubernetes.NewForConfig(cfg); err != nil {
			return nil, fmt.Errorf("kubernetes: %w", err)
		}
	}
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return nil, err
	}
	if now == nil {
		now = time.Now
	}
	return &reviewer{
		client:    client,
		attrs:     *c.ResourceAttributes,
		ttl:       time.Duration(c.CacheTTL),
		deniedTTL: min(time.Duration(c.DeniedCacheTTL), time.Duration(c.CacheTTL)),
		timeout:   time.Duration(c.Timeout),
		hashKey:   key,
		tokens:    newTTLCache[*user](c.CacheMaxEntries, now),
		access:    newTTLCache[bool](c.CacheMaxEntries, now),
		logger:    logger,
	}, nil
}

// tokenKey is a keyed hash of the token: the cache never holds the token.
func (rv *reviewer) tokenKey(token string) string {
	m := hmac.New(sha256.New, rv.hashKey)
	m.Write([]byte(token))
	return hex.EncodeToString(m.Sum(nil))
}

// bearerToken reads the token of an `Authorization: Bearer <token>` header.
func bearerToken(h http.Header) (string, error) {
	values := h.Values("Authorization")
	switch {
	case len(values) == 0:
		return "", promapi.Refuse(promapi.Unauthenticated, "no bearer token: send Authorization: Bearer <token>")
	case len(values) > 1:
		return "", promapi.Refuse(promapi.Unauthenticated, "more than one Authorization header")
	}
	scheme, token, ok := strings.Cut(strings.TrimSpace(values[0]), " ")
	token = strings.TrimSpace(token)
	if !ok || !strings.EqualFold(scheme, "Bearer") || token == "" || strings.ContainsAny(token, " \t") {
		return "", promapi.Refuse(promapi.Unauthenticated, "malformed Authorization header: want Bearer <token>")
	}
	return token, nil
}

// serviceAccountNamespace is the namespace of a ServiceAccount user name
// system:serviceaccount:<namespace>:<name>, or "".
func serviceAccountNamespace(username string) string {
	rest, ok := strings.CutPrefix(username, "system:serviceaccount:")
	if !ok {
		return ""
	}
	ns, name, ok := strings.Cut(rest, ":")
	if !ok || name == "" || strings.Contains(name, ":") || len(validation.IsDNS1123Label(ns)) > 0 {
		return ""
	}
	return ns
}

// review authenticates token and authorizes the requested namespace
// (requested is the resolved placeholder, possibly empty). Errors are
// *promapi.Error.
func (rv *reviewer) review(ctx context.Context, token, requested string) (*result, error) {
	tk := rv.tokenKey(token)
	u, err := rv.authenticate(ctx, tk, token)
	if err != nil {
		return nil, err
	}
	ns := strings.TrimSpace(requested)
	if ns == "" {
		ns = serviceAccountNamespace(u.Username)
	}
	switch {
	case ns == "":
		return nil, promapi.Refuse(promapi.NoTenant, "no tenant: the request does not say which namespace it is for")
	case strings.Contains(ns, ","):
		return nil, promapi.Refuse(promapi.BadTenant, "more than one namespace given (%q): a request is for exactly one namespace", ns)
	}
	if errs := validation.IsDNS1123Label(ns); len(errs) > 0 {
		return nil, promapi.Refuse(promapi.BadTenant, "%q is not a namespace name: %s", ns, strings.Join(errs, "; "))
	}
	if err := rv.authorize(ctx, tk, u, ns); err != nil {
		return nil, err
	}
	return &result{user: u, namespace: ns}, nil
}

func (rv *reviewer) authenticate(ctx context.Context, key, token string) (*user, error) {
	u, ok := rv.tokens.get(key)
	if !ok {
		ctx, cancel := context.WithTimeout(ctx, rv.timeout)
		defer cancel()
		tr, err := rv.client.AuthenticationV1().TokenReviews().Create(ctx,
			&authnv1.TokenReview{Spec: authnv1.TokenReviewSpec{Token: token}}, metav1.CreateOptions{})
		if err != nil {
			rv.logger.Error("TokenReview failed", zap.Error(err))
			return nil, promapi.Refuse(promapi.AuthUnavailable, "cannot verify the token: the Kubernetes API server is unavailable")
		}
		if tr.Status.Authenticated && tr.Status.User.Username != "" {
			ui := tr.Status.User
			u = &user{Username: ui.Username, UID: ui.UID, Groups: ui.Groups, Extra: ui.Extra}
			rv.tokens.put(key, u, rv.ttl)
		} else {
			rv.logger.Debug("token not authenticated", zap.String("reason", tr.Status.Error))
			rv.tokens.put(key, nil, rv.deniedTTL)
		}
	}
	if u == nil {
		return nil, promapi.Refuse(promapi.Unauthenticated, "the bearer token is not valid")
	}
	return u, nil
}

func (rv *reviewer) authorize(ctx context.Context, tokenKey string, u *user, ns string) error {
	key := tokenKey + "/" + ns
	allowed, ok := rv.access.get(key)
	if !ok {
		a := rv.attrs
		extra := make(map[string]authzv1.ExtraValue, len(u.Extra))
		for k, v := range u.Extra {
			extra[k] = authzv1.ExtraValue(v)
		}
		sar := &authzv1.SubjectAccessReview{Spec: authzv1.SubjectAccessReviewSpec{
			User: u.Username, UID: u.UID, Groups: u.Groups, Extra: extra,
			ResourceAttributes: &authzv1.ResourceAttributes{
				Namespace: ns, Verb: a.Verb, Group: a.Group, Version: a.Version,
				Resource: a.Resource, Subresource: a.Subresource, Name: a.Name,
			},
		}}
		ctx, cancel := context.WithTimeout(ctx, rv.timeout)
		defer cancel()
		res, err := rv.client.AuthorizationV1().SubjectAccessReviews().Create(ctx, sar, metav1.CreateOptions{})
		if err != nil {
			rv.logger.Error("SubjectAccessReview failed", zap.String("user", u.Username), zap.String("namespace", ns), zap.Error(err))
			return promapi.Refuse(promapi.AuthUnavailable, "cannot authorize the request: the Kubernetes API server is unavailable")
		}
		allowed = res.Status.Allowed && !res.Status.Denied
		if allowed {
			rv.access.put(key, true, rv.ttl)
		} else {
			rv.logger.Debug("access denied", zap.String("user", u.Username), zap.String("namespace", ns), zap.String("reason", res.Status.Reason))
			rv.access.put(key, false, rv.deniedTTL)
		}
	}
	if !allowed {
		return promapi.Refuse(promapi.Denied, "user %q may not %s in namespace %q", u.Username, rv.attrs, ns)
	}
	return nil
}
