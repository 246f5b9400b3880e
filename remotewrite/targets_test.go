package remotewrite

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/prom-tenant/caddy-prom-tenant/tenancy"
	"github.com/prom-tenant/caddy-prom-tenant/tenancy/v1alpha1"
)

func testSettings(t *testing.T, allow ...string) *targetSettings {
	t.Helper()
	s := &targetSettings{userAgent: "prom-tenant-test/1.0", retries: 1}
	for _, raw := range allow {
		u, err := url.Parse(raw)
		if err != nil {
			t.Fatal(err)
		}
		s.allowURLs = append(s.allowURLs, u)
	}
	return s
}

func TestAllowed(t *testing.T) {
	s := testSettings(t,
		"https://rw.example.com/api/v1/write",
		"http://gw.example.com:9091",
		"https://mimir.example.com/",
		"https://trailing.example.com/prefix/",
	)
	for _, tc := range []struct {
		url  string
		want bool
	}{
		{"https://rw.example.com/api/v1/write", true},
		{"https://rw.example.com/api/v1/write/", true},
		{"https://rw.example.com/api/v1/write/tenant-a", true},
		{"https://rw.example.com/api/v1/write?x=1", true},
		{"HTTPS://RW.Example.COM/api/v1/write", true},   // scheme and host are case-insensitive
		{"https://rw.example.com/api/v1/writer", false}, // not on a segment boundary
		{"https://rw.example.com/api/v1/write-other", false},
		{"https://rw.example.com/api/v1", false},
		{"https://rw.example.com/", false},
		{"https://rw.example.com", false},
		{"https://rw.example.com/API/v1/write", false}, // paths are case-sensitive
		{"http://rw.example.com/api/v1/write", false},  // scheme
		{"https://rw.example.com:8443/api/v1/write", false},
		{"https://rw.example.com.evil.example/api/v1/write", false},
		{"https://evil.example/api/v1/write", false},
		{"https://user:pw@rw.example.com/api/v1/write", false}, // userinfo
		{"https://user@rw.example.com/api/v1/write", false},
		{"https://:@rw.example.com/api/v1/write", false},
		{"https://rw.example.com@evil.example/api/v1/write", false},
		{"http://gw.example.com:9091", true},
		{"http://gw.example.com:9091/", true},
		{"http://gw.example.com:9091/pushgateway", true},
		{"http://gw.example.com/", false}, // port differs
		{"https://gw.example.com:9091/", false},
		{"https://mimir.example.com/api/v1/push", true},
		{"https://mimir.example.com", true},
		{"https://trailing.example.com/prefix", true},
		{"https://trailing.example.com/prefix/x", true},
		{"https://trailing.example.com/prefixed", false},
	} {
		u, err := url.Parse(tc.url)
		if err != nil {
			t.Fatalf("%s: %v", tc.url, err)
		}
		if got := s.allowed(u); got != tc.want {
			t.Errorf("allowed(%s) = %v, want %v", tc.url, got, tc.want)
		}
	}

	none := testSettings(t)
	u, _ := url.Parse("https://rw.example.com/api/v1/write")
	if none.allowed(u) {
		t.Errorf("allowed with an empty allow-list")
	}
}

// TestAllowedDotSegments: a path that climbs out of the allowed prefix with
// dot segments is refused, as are encoded paths, queries and fragments. The remote-write client cleans the path
// (path.Join in remote.NewAPI), and servers resolve dot segments, so the
// request would reach /admin.
func TestAllowedDotSegments(t *testing.T) {
	s := testSettings(t, "https://rw.example.com/api/v1/write")
	for _, raw := range []string{
		"https://rw.example.com/api/v1/write/../../../admin",
		"https://rw.example.com/api/v1/write/%2e%2e/%2e%2e/%2e%2e/admin",
		"https://rw.example.com/api/v1/write/./../../x",
		"https://rw.example.com/api/v1/write?x=1",
		"https://rw.example.com/api/v1/write#x",
	} {
		if u, err := s.externalURL(raw); err == nil {
			t.Errorf("externalURL(%s) = %s, want a refusal", raw, u)
		}
	}

	// What the request does once allowed: it leaves the prefix.
	var mu sync.Mutex
	var paths []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		paths = append(paths, r.URL.Path)
		mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	s = testSettings(t, srv.URL+"/api/v1/write")
	rw := &tenancy.RemoteWrite{Namespace: "t", Spec: &v1alpha1.RemoteWriteSpec{Target: &v1alpha1.RemoteWriteTargetSpec{
		Type: v1alpha1.TargetRemoteWrite, RemoteWrite: &v1alpha1.RemoteWriteTarget{URL: srv.URL + "/api/v1/write/../../admin"},
	}}}
	tg, err := s.newTarget(rw, nil)
	if err != nil {
		return // refused: good
	}
	_ = testBatchTarget(t, tg).send(context.Background(), testBatch())
	mu.Lock()
	defer mu.Unlock()
	for _, p := range paths {
		if !strings.HasPrefix(p, "/api/v1/write") {
			t.Errorf("an allowed target wrote to %s", p)
		}
	}
}

func TestExternalURL(t *testing.T) {
	s := testSettings(t, "https://rw.example.com/api/v1/write")
	if u, err := s.externalURL("https://rw.example.com/api/v1/write/x"); err != nil || u.Path != "/api/v1/write/x" {
		t.Errorf("externalURL = %v, %v", u, err)
	}
	_, err := s.externalURL("https://user:secret@rw.example.com/api/v1/write")
	if !errors.Is(err, errNotAllowed) {
		t.Fatalf("err = %v, want errNotAllowed", err)
	}
	if strings.Contains(err.Error(), "secret") {
		t.Errorf("error %q shows the password", err)
	}
	if _, err := s.externalURL("https://rw.example.com/%zz"); err == nil {
		t.Errorf("an unparsable URL passed")
	}
}

func TestCredentialFile(t *testing.T) {
	s := &targetSettings{credentialsDir: "/etc/prom-tenant/credentials"}
	for _, tc := range []struct {
		name string
		want string // "" with wantErr
		err  bool
	}{
		{name: "", want: ""}, // not set: no file
		{name: "password", want: "/etc/prom-tenant/credentials/team-a/password"},
		{name: "sub/password", want: "/etc/prom-tenant/credentials/team-a/sub/password"},
		{name: "a/../b", want: "/etc/prom-tenant/credentials/team-a/b"},
		{name: "./x", want: "/etc/prom-tenant/credentials/team-a/x"},
		{name: "/var/run/secrets/kubernetes.io/serviceaccount/token", err: true},
		{name: "../secret", err: true},
		{name: "..", err: true},
		{name: "a/../../b", err: true},
		{name: "team-a/../../../etc/passwd", err: true},
		{name: "../team-b/password", err: true}, // another tenant's folder
	} {
		got, err := s.credentialFile("team-a", "basicAuth.passwordFile", tc.name)
		switch {
		case tc.err && err == nil:
			t.Errorf("credentialFile(%q) = %q, want an error", tc.name, got)
		case tc.err && !strings.Contains(err.Error(), "basicAuth.passwordFile"):
			t.Errorf("credentialFile(%q) error %q does not name the field", tc.name, err)
		case !tc.err && err != nil:
			t.Errorf("credentialFile(%q): %v", tc.name, err)
		case !tc.err && got != filepath.FromSlash(tc.want):
			t.Errorf("credentialFile(%q) = %q, want %q", tc.name, got, tc.want)
		}
	}

	off := &targetSettings{}
	if _, err := off.credentialFile("team-a", "tls.caFile", "ca.pem"); err == nil || !strings.Contains(err.Error(), "credentials_dir") {
		t.Errorf("file credentials without credentials_dir: err = %v, want one naming credentials_dir", err)
	}
	if got, err := off.credentialFile("team-a", "tls.caFile", ""); got != "" || err != nil {
		t.Errorf("no file without credentials_dir = %q, %v; want nothing, no error", got, err)
	}
}

func TestServiceURL(t *testing.T) {
	for _, tc := range []struct {
		template, ns, svc string
		port              int
		want              string
	}{
		{"{service}.{namespace}.svc:{port}", "team-a", "prometheus", 9090, "http://prometheus.team-a.svc:9090"},
		{"{service}.{namespace}.svc.cluster.local:{port}", "team-a", "pg", 9091, "http://pg.team-a.svc.cluster.local:9091"},
		{"{namespace}-{service}.internal:{port}", "b", "p", 1, "http://b-p.internal:1"},
		// The replacement is one pass: a value is never expanded again.
		{"{service}.{namespace}.svc:{port}", "team-a", "{namespace}", 80, "http://{namespace}.team-a.svc:80"},
	} {
		s := &targetSettings{serviceAddress: tc.template}
		if got := s.serviceURL(tc.ns, tc.svc, tc.port); got != tc.want {
			t.Errorf("serviceURL(%q, %q, %d) with %q = %q, want %q", tc.ns, tc.svc, tc.port, tc.template, got, tc.want)
		}
	}
}

func TestClientConfig(t *testing.T) {
	s := &targetSettings{credentialsDir: "/creds"}
	cfg, err := s.clientConfig("team-a", &v1alpha1.RemoteWriteTarget{
		URL:       "https://rw.example.com/api/v1/write",
		BasicAuth: &v1alpha1.BasicAuth{Username: "u", PasswordFile: "pw"},
		TLS:       &v1alpha1.TLSConfig{CAFile: "ca.pem", ServerName: "rw"},
		Headers:   map[string]string{"X-Scope-OrgID": "team-a"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.BasicAuth.Username != "u" || cfg.BasicAuth.PasswordFile != filepath.FromSlash("/creds/team-a/pw") {
		t.Errorf("basic auth = %+v", cfg.BasicAuth)
	}
	if cfg.TLSConfig.CAFile != filepath.FromSlash("/creds/team-a/ca.pem") || cfg.TLSConfig.ServerName != "rw" {
		t.Errorf("TLS = %+v", cfg.TLSConfig)
	}
	if h := cfg.HTTPHeaders.Headers["X-Scope-OrgID"]; len(h.Values) != 1 || h.Values[0] != "team-a" {
		t.Errorf("headers = %+v", cfg.HTTPHeaders)
	}

	for name, r := range map[string]*v1alpha1.RemoteWriteTarget{
		"absolute password file": {BasicAuth: &v1alpha1.BasicAuth{Username: "u", PasswordFile: "/var/run/secrets/token"}},
		"escaping key file":      {TLS: &v1alpha1.TLSConfig{CertFile: "c.pem", KeyFile: "../k.pem"}},
		"reserved header":        {Headers: map[string]string{"Authorization": "Bearer x"}},
		"host header":            {Headers: map[string]string{"host": "internal"}},
		"secret without kubernetes": {BasicAuth: &v1alpha1.BasicAuth{Username: "u",
			PasswordSecret: &v1alpha1.SecretKeyRef{Name: "s", Key: "k"}}},
	} {
		if _, err := s.clientConfig("team-a", r); err == nil {
			t.Errorf("%s: no error", name)
		}
	}

	// A Secret is read in the object's namespace, never another.
	withK8s := &targetSettings{secrets: newKubeSecrets(nil)}
	cfg, err = withK8s.clientConfig("team-a", &v1alpha1.RemoteWriteTarget{
		BasicAuth: &v1alpha1.BasicAuth{Username: "u", PasswordSecret: &v1alpha1.SecretKeyRef{Name: "s", Key: "k"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.BasicAuth.PasswordRef != "team-a/s/k" {
		t.Errorf("password ref %q, want team-a/s/k", cfg.BasicAuth.PasswordRef)
	}
}

func TestNewTarget(t *testing.T) {
	s := testSettings(t, "https://rw.example.com/api/v1/write", "http://gw.example.com:9091")
	s.serviceAddress = "{service}.{namespace}.svc:{port}"
	for _, tc := range []struct {
		name     string
		spec     v1alpha1.RemoteWriteSpec
		id       string
		protocol string
		snapshot bool
		err      error // errors.Is; nil: success
	}{
		{
			name:     "prometheus service of the namespace",
			spec:     v1alpha1.RemoteWriteSpec{Target: &v1alpha1.RemoteWriteTargetSpec{Type: v1alpha1.TargetPrometheus, Prometheus: &v1alpha1.PrometheusTarget{ServiceName: "prom", ServicePort: 9090}}},
			id:       "prometheus http://prom.team-a.svc:9090/api/v1/write",
			protocol: v1alpha1.RemoteWriteProtocol1,
		},
		{
			name:     "prometheus with a path",
			spec:     v1alpha1.RemoteWriteSpec{Target: &v1alpha1.RemoteWriteTargetSpec{Type: v1alpha1.TargetPrometheus, Prometheus: &v1alpha1.PrometheusTarget{ServiceName: "prom", ServicePort: 9090, Path: "/rw"}}},
			id:       "prometheus http://prom.team-a.svc:9090/rw",
			protocol: v1alpha1.RemoteWriteProtocol1,
		},
		{
			name:     "pushgateway service",
			spec:     v1alpha1.RemoteWriteSpec{Target: &v1alpha1.RemoteWriteTargetSpec{Type: v1alpha1.TargetPushgateway, Pushgateway: &v1alpha1.PushgatewayTarget{ServiceName: "pg", ServicePort: 9091, JobName: "j"}}},
			id:       "pushgateway http://pg.team-a.svc:9091/metrics/job@base64/ag==",
			snapshot: true,
		},
		{
			name:     "pushgateway url",
			spec:     v1alpha1.RemoteWriteSpec{Target: &v1alpha1.RemoteWriteTargetSpec{Type: v1alpha1.TargetPushgateway, Pushgateway: &v1alpha1.PushgatewayTarget{URL: "http://gw.example.com:9091", JobName: "j"}}},
			id:       "pushgateway http://gw.example.com:9091/metrics/job@base64/ag==",
			snapshot: true,
		},
		{
			name: "pushgateway url not allowed",
			spec: v1alpha1.RemoteWriteSpec{Target: &v1alpha1.RemoteWriteTargetSpec{Type: v1alpha1.TargetPushgateway, Pushgateway: &v1alpha1.PushgatewayTarget{URL: "http://evil.example:9091", JobName: "j"}}},
			err:  errNotAllowed,
		},
		{
			name:     "remote write 2.0",
			spec:     v1alpha1.RemoteWriteSpec{Target: &v1alpha1.RemoteWriteTargetSpec{Type: v1alpha1.TargetRemoteWrite, RemoteWrite: &v1alpha1.RemoteWriteTarget{URL: "https://rw.example.com/api/v1/write", ProtocolVersion: "2.0"}}},
			id:       "remote_write https://rw.example.com/api/v1/write",
			protocol: v1alpha1.RemoteWriteProtocol2,
		},
		{
			name: "remote write not allowed",
			spec: v1alpha1.RemoteWriteSpec{Target: &v1alpha1.RemoteWriteTargetSpec{Type: v1alpha1.TargetRemoteWrite, RemoteWrite: &v1alpha1.RemoteWriteTarget{URL: "https://rw.example.com/api/v1/other"}}},
			err:  errNotAllowed,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			spec := tc.spec
			rt, err := s.newTarget(&tenancy.RemoteWrite{Namespace: "team-a", Spec: &spec}, nil)
			if tc.err != nil {
				if !errors.Is(err, tc.err) {
					t.Fatalf("err = %v, want %v", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if rt.id != tc.id || rt.protocol != tc.protocol {
				t.Errorf("target %q protocol %q, want %q %q", rt.id, rt.protocol, tc.id, tc.protocol)
			}
			_, push := rt.delivery.(pushgatewayDelivery)
			_, batches := rt.delivery.(batchDelivery)
			if push != tc.snapshot || batches == tc.snapshot {
				t.Errorf("delivery %T, want a Pushgateway's %v", rt.delivery, tc.snapshot)
			}
		})
	}
	if _, err := s.newTarget(&tenancy.RemoteWrite{Namespace: "team-a", Spec: &v1alpha1.RemoteWriteSpec{}}, nil); err == nil {
		t.Errorf("a spec without a target gave no error")
	}
	// The type decides; a block of another type is never used.
	other := &v1alpha1.RemoteWriteSpec{Target: &v1alpha1.RemoteWriteTargetSpec{Type: v1alpha1.TargetPushgateway,
		Prometheus: &v1alpha1.PrometheusTarget{ServiceName: "prom", ServicePort: 9090}}}
	if rt, err := s.newTarget(&tenancy.RemoteWrite{Namespace: "team-a", Spec: other}, nil); err == nil {
		t.Errorf("type pushgateway with a prometheus block gave target %q", rt.id)
	}
}

// TestTargetNoRedirects: a target that redirects elsewhere (past the
// allow-list) is not followed.
func TestTargetNoRedirects(t *testing.T) {
	var mu sync.Mutex
	hits := 0
	elsewhere := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		hits++
		mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	defer elsewhere.Close()
	redirector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, elsewhere.URL+"/api/v1/write", http.StatusTemporaryRedirect)
	}))
	defer redirector.Close()

	s := testSettings(t, redirector.URL)
	rt, err := s.newTarget(&tenancy.RemoteWrite{Namespace: "t", Spec: &v1alpha1.RemoteWriteSpec{Target: &v1alpha1.RemoteWriteTargetSpec{
		Type: v1alpha1.TargetRemoteWrite, RemoteWrite: &v1alpha1.RemoteWriteTarget{URL: redirector.URL + "/api/v1/write"},
	}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = testBatchTarget(t, rt).send(context.Background(), testBatch())
	var te *targetError
	if !errors.As(err, &te) || te.reason != "http_3xx" || te.drop {
		t.Errorf("send to a redirect = %v, want a targetError http_3xx, not dropped", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if hits != 0 {
		t.Errorf("the redirect was followed")
	}
}
