package remotewrite

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	config_util "github.com/prometheus/common/config"

	"github.com/prom-tenant/caddy-prom-tenant/tenancy"
	"github.com/prom-tenant/caddy-prom-tenant/tenancy/v1alpha1"
)

// targetSettings are the admin's rules for the targets tenants may name.
type targetSettings struct {
	allowURLs      []*url.URL
	serviceAddress string                    // template with {service}, {namespace}, {port}
	credentialsDir string                    // "" refuses file credentials
	tenantHeader   string                    // set to the namespace on remoteWrite requests; tenants cannot set it
	secrets        config_util.SecretManager // nil: passwordSecret is refused
	services       *kubeServices             // nil: Services are reached by serviceAddress
	userAgent      string
	timeout        time.Duration // per request; 0 none
	retries        int
}

// errNotAllowed says a target URL is outside the admin's allow-list.
var errNotAllowed = errors.New("not permitted by the prom_remote_write allow_url list")

// allowed reports whether u is under one of the allowed URLs: the same
// scheme and host, and a path under the allowed path on a segment boundary.
func (s *targetSettings) allowed(u *url.URL) bool {
	if u.User != nil {
		return false // credentials in the URL would bypass the credential rules
	}
	for _, a := range s.allowURLs {
		if !strings.EqualFold(a.Scheme, u.Scheme) || !strings.EqualFold(a.Host, u.Host) {
			continue
		}
		prefix := strings.TrimSuffix(a.Path, "/")
		if u.Path == prefix || strings.HasPrefix(u.Path, prefix+"/") {
			return true
		}
	}
	return false
}

// externalURL parses a tenant-given URL and checks it against the allow-list.
// Paths are compared as sent: dot segments (which the client would resolve
// to a path outside the allowed one) and percent-encoded paths are refused,
// and so are a query and a fragment.
func (s *targetSettings) externalURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, err
	}
	switch {
	case u.RawPath != "" || slices.ContainsFunc(strings.Split(u.Path, "/"), func(seg string) bool { return seg == "." || seg == ".." }):
		return nil, fmt.Errorf("target URL %s: the path must be plain, without . or .. segments or percent-encoding", u.Redacted())
	case u.RawQuery != "" || u.Fragment != "" || u.ForceQuery:
		return nil, fmt.Errorf("target URL %s: a query or fragment is not allowed", u.Redacted())
	case !s.allowed(u):
		return nil, fmt.Errorf("target URL %s: %w", u.Redacted(), errNotAllowed)
	}
	return u, nil
}

// errServiceNeedsKubernetes refuses a Service target that only DNS would resolve.
var errServiceNeedsKubernetes = errors.New("a Service target of a MetricAccess from the Kubernetes API needs kubernetes in prom_remote_write: " +
	"the copier resolves Services through the API, since a Service's DNS name can point outside its namespace")

// service is the base URL of the Service name:port in the tenant's own
// namespace, and, with Kubernetes access, the endpoint its connections go
// to. Without it the admin's service_address is dialed, which only objects
// the admin wrote (files) may use: a tenant's own object could name a
// Service it made into a pointer to another namespace.
func (s *targetSettings) service(rw *tenancy.RemoteWrite, name string, port int) (string, *serviceEndpoint, error) {
	switch {
	case s.services != nil:
		ep := &serviceEndpoint{services: s.services, key: serviceKey{namespace: rw.Namespace, name: name, port: port}}
		return fmt.Sprintf("http://%s.%s.svc:%d", name, rw.Namespace, port), ep, nil
	case rw.Object.Source == tenancy.SourceKubernetes:
		return "", nil, errServiceNeedsKubernetes
	}
	return s.serviceURL(rw.Namespace, name, port), nil, nil
}

// serviceURL is the base URL of a Service in the tenant's own namespace: the
// namespace is the object's, never the tenant's choice.
func (s *targetSettings) serviceURL(namespace, service string, port int) string {
	addr := strings.NewReplacer("{service}", service, "{namespace}", namespace, "{port}", strconv.Itoa(port)).Replace(s.serviceAddress)
	return "http://" + addr
}

// credentialFile resolves a tenant-given file name under the tenant's own
// folder of the credentials directory, <credentials_dir>/<namespace>/: a
// tenant cannot name a file elsewhere (another tenant's, or the proxy's own
// service-account token).
func (s *targetSettings) credentialFile(namespace, field, name string) (string, error) {
	if name == "" {
		return "", nil
	}
	if s.credentialsDir == "" {
		return "", fmt.Errorf("%s: file credentials are off: the admin sets credentials_dir in prom_remote_write to allow them", field)
	}
	if filepath.IsAbs(name) || !filepath.IsLocal(name) {
		return "", fmt.Errorf("%s: %q must be a relative path inside the credentials directory", field, name)
	}
	return filepath.Join(s.credentialsDir, namespace, name), nil
}

// resolvedTarget is a target built from a spec, with the identity its
// progress is saved under and the way a copier delivers to it.
type resolvedTarget struct {
	id       string // kind and URL, without credentials
	protocol string
	delivery delivery
}

// newTarget builds the target of rw. onRetry counts retried attempts.
func (s *targetSettings) newTarget(rw *tenancy.RemoteWrite, onRetry func(reason string, err error)) (*resolvedTarget, error) {
	spec := rw.Spec.Target
	if spec == nil {
		return nil, errors.New("no target: set target.type and its block")
	}
	// Validation let exactly the block of the type through.
	switch {
	case spec.Type == v1alpha1.TargetPrometheus && spec.Prometheus != nil:
		p := spec.Prometheus
		base, ep, err := s.service(rw, p.ServiceName, p.ServicePort)
		if err != nil {
			return nil, err
		}
		u := base + p.WritePath()
		client, err := s.httpClient(config_util.HTTPClientConfig{}, ep)
		if err != nil {
			return nil, err
		}
		t, err := newRemoteWriteTarget(u, v1alpha1.RemoteWriteProtocol1, client, s.retries, onRetry)
		if err != nil {
			return nil, err
		}
		var bt batchTarget = t
		if ep != nil {
			bt = serviceBatchTarget{endpoint: ep, next: t}
		}
		return &resolvedTarget{id: "prometheus " + u, protocol: v1alpha1.RemoteWriteProtocol1, delivery: batchDelivery{target: bt}}, nil
	case spec.Type == v1alpha1.TargetPushgateway && spec.Pushgateway != nil:
		p := spec.Pushgateway
		var base string
		var ep *serviceEndpoint
		if p.URL != "" {
			u, err := s.externalURL(p.URL)
			if err != nil {
				return nil, err
			}
			base = u.String()
		} else {
			var err error
			if base, ep, err = s.service(rw, p.ServiceName, p.ServicePort); err != nil {
				return nil, err
			}
		}
		client, err := s.httpClient(config_util.HTTPClientConfig{}, ep)
		if err != nil {
			return nil, err
		}
		u := groupURL(base, p.JobName, p.GroupingKey)
		var st snapshotTarget = &pushgatewayTarget{url: u, client: client}
		if ep != nil {
			st = serviceSnapshotTarget{endpoint: ep, next: st}
		}
		key := map[string]string{"job": p.JobName}
		for k, v := range p.GroupingKey {
			key[k] = v
		}
		return &resolvedTarget{id: "pushgateway " + u, delivery: pushgatewayDelivery{target: st, group: newLabelRule(key, false)}}, nil
	case spec.Type == v1alpha1.TargetRemoteWrite && spec.RemoteWrite != nil:
		r := spec.RemoteWrite
		u, err := s.externalURL(r.URL)
		if err != nil {
			return nil, err
		}
		cfg, err := s.clientConfig(rw.Namespace, r)
		if err != nil {
			return nil, err
		}
		client, err := s.httpClient(cfg, nil)
		if err != nil {
			return nil, err
		}
		t, err := newRemoteWriteTarget(u.String(), r.Protocol(), client, s.retries, onRetry)
		if err != nil {
			return nil, err
		}
		return &resolvedTarget{id: "remote_write " + u.String(), protocol: r.Protocol(), delivery: batchDelivery{target: t}}, nil
	}
	return nil, fmt.Errorf("target type %q without its block", spec.Type)
}

// clientConfig is Prometheus's HTTP client configuration for a remoteWrite
// target: basic auth with the password from a Secret of the tenant's
// namespace or a file under the credentials directory, TLS, extra headers.
func (s *targetSettings) clientConfig(namespace string, r *v1alpha1.RemoteWriteTarget) (config_util.HTTPClientConfig, error) {
	cfg := config_util.DefaultHTTPClientConfig
	if b := r.BasicAuth; b != nil {
		cfg.BasicAuth = &config_util.BasicAuth{Username: b.Username}
		switch {
		case b.PasswordSecret != nil:
			cfg.BasicAuth.PasswordRef = b.PasswordSecret.Name + "/" + b.PasswordSecret.Key
		default:
			f, err := s.credentialFile(namespace, "basicAuth.passwordFile", b.PasswordFile)
			if err != nil {
				return cfg, err
			}
			cfg.BasicAuth.PasswordFile = f
		}
	}
	if t := r.TLS; t != nil {
		var err error
		tc := &cfg.TLSConfig
		tc.ServerName, tc.InsecureSkipVerify = t.ServerName, t.InsecureSkipVerify
		if tc.CAFile, err = s.credentialFile(namespace, "tls.caFile", t.CAFile); err != nil {
			return cfg, err
		}
		if tc.CertFile, err = s.credentialFile(namespace, "tls.certFile", t.CertFile); err != nil {
			return cfg, err
		}
		if tc.KeyFile, err = s.credentialFile(namespace, "tls.keyFile", t.KeyFile); err != nil {
			return cfg, err
		}
	}
	if len(r.Headers) > 0 || s.tenantHeader != "" {
		cfg.HTTPHeaders = &config_util.Headers{Headers: map[string]config_util.Header{}}
		for k, v := range r.Headers {
			if s.tenantHeader != "" && strings.EqualFold(k, s.tenantHeader) {
				return cfg, fmt.Errorf("headers: %s is set by the proxy (tenant_header) to the tenant's namespace", k)
			}
			cfg.HTTPHeaders.Headers[k] = config_util.Header{Values: []string{v}}
		}
		if s.tenantHeader != "" {
			cfg.HTTPHeaders.Headers[s.tenantHeader] = config_util.Header{Values: []string{namespace}}
		}
	}
	if err := cfg.Validate(); err != nil {
		return cfg, err
	}
	if cfg.BasicAuth != nil && cfg.BasicAuth.PasswordRef != "" {
		if s.secrets == nil {
			return cfg, errors.New("basicAuth.passwordSecret needs Kubernetes access: set kubernetes in prom_remote_write")
		}
		cfg.BasicAuth.PasswordRef = namespace + "/" + cfg.BasicAuth.PasswordRef
	}
	return cfg, nil
}

// httpClient makes the client of a target: Prometheus's HTTP client
// configuration, our User-Agent and timeout, and a status recorder for
// classifying failures. Connections go to ep's Pods if ep is not nil.
func (s *targetSettings) httpClient(cfg config_util.HTTPClientConfig, ep *serviceEndpoint) (*http.Client, error) {
	cfg.FollowRedirects = false
	opts := []config_util.HTTPClientOption{config_util.WithUserAgent(s.userAgent)}
	if ep != nil {
		opts = append(opts, config_util.WithDialContextFunc(ep.dial))
	}
	if s.secrets != nil {
		opts = append(opts, config_util.WithSecretManager(s.secrets))
	}
	c, err := config_util.NewClientFromConfig(cfg, "prom_remote_write", opts...)
	if err != nil {
		return nil, err
	}
	c.Transport = statusRecorder{next: c.Transport}
	c.Timeout = s.timeout
	return c, nil
}
