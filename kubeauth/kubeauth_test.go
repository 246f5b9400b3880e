package kubeauth

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/prom-tenant/caddy-prom-tenant/internal/promapi"
	"go.uber.org/zap"
	authnv1 "k8s.io/api/authentication/v1"
	authzv1 "k8s.io/api/authorization/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
)

func TestBearerToken(t *testing.T) {
	for _, tc := range []struct {
		headers []string
		token   string // "" means refused with 401
	}{
		{nil, ""},
		{[]string{""}, ""},
		{[]string{"Bearer"}, ""},
		{[]string{"Bearer "}, ""},
		{[]string{"Basic dXNlcjpwYXNz"}, ""},
		{[]string{"Bearer a b"}, ""},
		{[]string{"Bearer abc", "Bearer def"}, ""},
		{[]string{"Bearer abc.def-ghi_jkl"}, "abc.def-ghi_jkl"},
		{[]string{"bearer abc"}, "abc"},
		{[]string{"  Bearer   abc  "}, "abc"},
	} {
		h := http.Header{}
		for _, v := range tc.headers {
			h.Add("Authorization", v)
		}
		got, err := bearerToken(h)
		if tc.token == "" {
			var re *promapi.Error
			if !errors.As(err, &re) || re.Status != http.StatusUnauthorized {
				t.Errorf("%q: got %q, %v; want a 401", tc.headers, got, err)
			}
			continue
		}
		if err != nil || got != tc.token {
			t.Errorf("%q: got %q, %v; want %q", tc.headers, got, err, tc.token)
		}
	}
}

func TestServiceAccountNamespace(t *testing.T) {
	for user, want := range map[string]string{
		"system:serviceaccount:team-a:reader": "team-a",
		"system:serviceaccount:team-a":        "",
		"system:serviceaccount:team-a:":       "",
		"system:serviceaccount::reader":       "",
		"system:serviceaccount:Team_A:reader": "",
		"system:serviceaccount:a:b:c":         "",
		"alice":                               "",
		"system:serviceaccounts:team-a:x":     "",
		"system:node:team-a":                  "",
	} {
		if got := serviceAccountNamespace(user); got != want {
			t.Errorf("serviceAccountNamespace(%q) = %q, want %q", user, got, want)
		}
	}
}

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func TestCacheExpiryAndBound(t *testing.T) {
	clk := &clock{t: time.Unix(1000, 0)}
	c := newTTLCache[int](3, clk.now)
	c.put("a", 1, 10*time.Second)
	c.put("b", 2, 10*time.Second)
	c.put("c", 3, 10*time.Second)
	if v, ok := c.get("a"); !ok || v != 1 { // a is now the most recently used
		t.Fatalf("get a = %v, %v", v, ok)
	}
	c.put("d", 4, 10*time.Second) // evicts b, the least recently used
	if _, ok := c.get("b"); ok {
		t.Fatal("b survived eviction")
	}
	if c.len() != 3 {
		t.Fatalf("len = %d, want 3", c.len())
	}
	for _, k := range []string{"a", "c", "d"} {
		if _, ok := c.get(k); !ok {
			t.Fatalf("%s evicted", k)
		}
	}
	clk.add(9 * time.Second)
	if _, ok := c.get("a"); !ok {
		t.Fatal("a expired early")
	}
	c.put("c", 30, 10*time.Second) // refreshes c
	clk.add(time.Second)
	if _, ok := c.get("a"); ok {
		t.Fatal("a did not expire")
	}
	if v, ok := c.get("c"); !ok || v != 30 {
		t.Fatalf("refreshed c = %v, %v", v, ok)
	}
	c.put("z", 0, 0) // ttl 0: not stored
	if _, ok := c.get("z"); ok {
		t.Fatal("stored with ttl 0")
	}
	for i := range 100 {
		c.put(string(rune('A'+i)), i, time.Minute)
	}
	if c.len() != 3 {
		t.Fatalf("len = %d after many puts, want 3", c.len())
	}
}

// fakeAPI is a client-go fake answering TokenReviews from a token table and
// SubjectAccessReviews from a grant table, counting calls.
type fakeAPI struct {
	mu      sync.Mutex
	users   map[string]authnv1.UserInfo // token → user
	grants  map[string]bool             // user/namespace
	fail    bool
	reviews int
	sars    []authzv1.SubjectAccessReviewSpec
	client  *fake.Clientset
}

func newFakeAPI() *fakeAPI {
	f := &fakeAPI{users: map[string]authnv1.UserInfo{}, grants: map[string]bool{}, client: fake.NewClientset()}
	f.client.PrependReactor("create", "tokenreviews", func(a k8stesting.Action) (bool, runtime.Object, error) {
		f.mu.Lock()
		defer f.mu.Unlock()
		f.reviews++
		if f.fail {
			return true, nil, errors.New("connection refused")
		}
		tr := a.(k8stesting.CreateAction).GetObject().(*authnv1.TokenReview).DeepCopy()
		if u, ok := f.users[tr.Spec.Token]; ok {
			tr.Status = authnv1.TokenReviewStatus{Authenticated: true, User: u}
		} else {
			tr.Status = authnv1.TokenReviewStatus{Error: "invalid bearer token"}
		}
		return true, tr, nil
	})
	f.client.PrependReactor("create", "subjectaccessreviews", func(a k8stesting.Action) (bool, runtime.Object, error) {
		f.mu.Lock()
		defer f.mu.Unlock()
		if f.fail {
			return true, nil, errors.New("connection refused")
		}
		sar := a.(k8stesting.CreateAction).GetObject().(*authzv1.SubjectAccessReview).DeepCopy()
		f.sars = append(f.sars, sar.Spec)
		sar.Status.Allowed = f.grants[sar.Spec.User+"/"+sar.Spec.ResourceAttributes.Namespace]
		return true, sar, nil
	})
	return f
}

func (f *fakeAPI) counts() (int, int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.reviews, len(f.sars)
}

func (f *fakeAPI) set(fn func()) { f.mu.Lock(); fn(); f.mu.Unlock() }

func newHandler(t *testing.T, f *fakeAPI, c Config, clk *clock) *Handler {
	t.Helper()
	h := &Handler{Config: c, client: f.client, logger: zap.NewNop()}
	var now func() time.Time
	if clk != nil {
		now = clk.now
	}
	rv, err := newReviewer(&h.Config, h.client, h.logger, now)
	if err != nil {
		t.Fatal(err)
	}
	h.rv = rv
	return h
}

type outcome struct {
	status    int
	errorType string
	msg       string
	// seen by the next handler
	tenantVar, header, userID, auth string
}

func serve(t *testing.T, h *Handler, r *http.Request) outcome {
	t.Helper()
	w := httptest.NewRecorder()
	repl := caddy.NewReplacer()
	r = caddyhttp.PrepareRequest(r, repl, w, nil)
	var o outcome
	next := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		o.tenantVar, _ = caddyhttp.GetVar(r.Context(), NamespaceVar).(string)
		o.header = r.Header.Get("X-Tenant-Namespace")
		o.userID = repl.ReplaceAll("{http.auth.user.id}", "")
		o.auth = r.Header.Get("Authorization")
		w.WriteHeader(http.StatusOK)
		return nil
	})
	if err := h.ServeHTTP(w, r, next); err != nil {
		t.Fatalf("ServeHTTP: %v", err)
	}
	o.status = w.Code
	if w.Code != http.StatusOK {
		var env struct{ Status, ErrorType, Error string }
		if err := json.Unmarshal(w.Body.Bytes(), &env); err != nil || env.Status != "error" {
			t.Fatalf("status %d body %q is not an error envelope", w.Code, w.Body.String())
		}
		if ct := w.Header().Get("Content-Type"); ct != "application/json" {
			t.Fatalf("Content-Type %q", ct)
		}
		o.errorType, o.msg = env.ErrorType, env.Error
	}
	return o
}

func req(target, token, ns string) *http.Request {
	r := httptest.NewRequest(http.MethodGet, target, nil)
	if token != "" {
		r.Header.Set("Authorization", "Bearer "+token)
	}
	if ns != "" {
		r.Header.Set("X-Tenant-Namespace", ns)
	}
	return r
}

const saA = "system:serviceaccount:team-a:reader"

func TestHandler(t *testing.T) {
	f := newFakeAPI()
	f.users["tok-a"] = authnv1.UserInfo{Username: saA, UID: "uid-1", Groups: []string{"system:serviceaccounts", "system:serviceaccounts:team-a"},
		Extra: map[string]authnv1.ExtraValue{"authentication.kubernetes.io/pod-name": {"p"}}}
	f.users["tok-alice"] = authnv1.UserInfo{Username: "alice", Groups: []string{"devs"}}
	f.grants[saA+"/team-a"] = true
	f.grants["alice/team-b"] = true
	h := newHandler(t, f, Config{}, nil)

	for _, tc := range []struct {
		name, token, ns string
		status          int
		errorType       string
		tenant          string
		msgHas          string
	}{
		{"no token", "", "team-a", 401, "unauthorized", "", "no bearer token"},
		{"garbage token", "garbage", "team-a", 401, "unauthorized", "", "not valid"},
		{"allowed", "tok-a", "team-a", 200, "", "team-a", ""},
		{"SA defaults to its namespace", "tok-a", "", 200, "", "team-a", ""},
		{"other namespace", "tok-a", "team-b", 403, "forbidden", "", `may not get pods.metrics.k8s.io in namespace "team-b"`},
		{"user, granted", "tok-alice", "team-b", 200, "", "team-b", ""},
		{"user, no namespace", "tok-alice", "", 401, "unauthorized", "", "no tenant"},
		{"two namespaces", "tok-a", "team-a,team-b", 400, "bad_data", "", "exactly one"},
		{"not a namespace", "tok-a", "Team_A", 400, "bad_data", "", "not a namespace"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := serve(t, h, req("/api/v1/query?query=up", tc.token, tc.ns))
			if o.status != tc.status || o.errorType != tc.errorType || !strings.Contains(o.msg, tc.msgHas) {
				t.Fatalf("got %d %s %q; want %d %s containing %q", o.status, o.errorType, o.msg, tc.status, tc.errorType, tc.msgHas)
			}
			if tc.status != 200 {
				if strings.Contains(o.msg, tc.token) && tc.token != "" {
					t.Fatalf("error message %q contains the token", o.msg)
				}
				return
			}
			if o.tenantVar != tc.tenant || o.header != tc.tenant {
				t.Fatalf("var %q, header %q; want %q", o.tenantVar, o.header, tc.tenant)
			}
			if o.auth != "" {
				t.Fatal("Authorization header passed on")
			}
			if o.userID == "" || o.userID != f.users[tc.token].Username {
				t.Fatalf("http.auth.user.id = %q", o.userID)
			}
		})
	}
	// The SAR carried the whole identity.
	f.mu.Lock()
	spec := f.sars[0]
	f.mu.Unlock()
	if spec.User != saA || spec.UID != "uid-1" || len(spec.Groups) != 2 || spec.Extra["authentication.kubernetes.io/pod-name"][0] != "p" ||
		*spec.ResourceAttributes != (authzv1.ResourceAttributes{Namespace: "team-a", Verb: "get", Group: "metrics.k8s.io", Resource: "pods"}) {
		t.Fatalf("SubjectAccessReview spec %+v", spec)
	}
}

func TestCachesBothReviews(t *testing.T) {
	f := newFakeAPI()
	f.users["tok-a"] = authnv1.UserInfo{Username: saA}
	f.grants[saA+"/team-a"] = true
	clk := &clock{t: time.Unix(1000, 0)}
	h := newHandler(t, f, Config{CacheTTL: caddy.Duration(30 * time.Second)}, clk)

	for range 5 {
		if o := serve(t, h, req("/", "tok-a", "team-a")); o.status != 200 {
			t.Fatalf("status %d", o.status)
		}
	}
	if tr, sar := f.counts(); tr != 1 || sar != 1 {
		t.Fatalf("%d TokenReviews, %d SARs for 5 requests; want 1, 1", tr, sar)
	}
	// Denials are cached for the shorter denied_cache_ttl (5s by default).
	serve(t, h, req("/", "tok-a", "team-b"))
	serve(t, h, req("/", "tok-a", "team-b"))
	if _, sar := f.counts(); sar != 2 {
		t.Fatalf("%d SARs, want 2", sar)
	}
	f.set(func() { f.grants[saA+"/team-b"] = true })
	if o := serve(t, h, req("/", "tok-a", "team-b")); o.status != 403 {
		t.Fatalf("cached denial: %d", o.status)
	}
	clk.add(5 * time.Second)
	if o := serve(t, h, req("/", "tok-a", "team-b")); o.status != 200 {
		t.Fatalf("after denied_cache_ttl: %d", o.status)
	}
	// Revocation shows after cache_ttl.
	f.set(func() { delete(f.grants, saA+"/team-a") })
	if o := serve(t, h, req("/", "tok-a", "team-a")); o.status != 200 {
		t.Fatalf("cached grant: %d", o.status)
	}
	clk.add(26 * time.Second)
	if o := serve(t, h, req("/", "tok-a", "team-a")); o.status != 403 {
		t.Fatalf("after cache_ttl: %d", o.status)
	}
	// The caches hold no token.
	for _, el := range h.rv.tokens.items {
		if strings.Contains(el.Value.(*cacheEntry[*user]).key, "tok-a") {
			t.Fatal("token in a cache key")
		}
	}
	for k := range h.rv.access.items {
		if strings.Contains(k, "tok-a") {
			t.Fatal("token in a cache key")
		}
	}
}

func TestAPIServerErrorFailsClosed(t *testing.T) {
	f := newFakeAPI()
	f.users["tok-a"] = authnv1.UserInfo{Username: saA}
	f.grants[saA+"/team-a"] = true
	f.fail = true
	h := newHandler(t, f, Config{}, nil)
	if o := serve(t, h, req("/", "tok-a", "team-a")); o.status != 503 || o.errorType != "unavailable" {
		t.Fatalf("TokenReview failing: %d %s", o.status, o.errorType)
	}
	// Errors are not cached: recovery is immediate.
	f.set(func() { f.fail = false })
	if o := serve(t, h, req("/", "tok-a", "team-a")); o.status != 200 {
		t.Fatalf("after recovery: %d", o.status)
	}
	// SAR failing with the TokenReview cached.
	f.set(func() { f.fail = true })
	if o := serve(t, h, req("/", "tok-a", "team-c")); o.status != 503 {
		t.Fatalf("SAR failing: %d", o.status)
	}
}

func TestNamespacePlaceholder(t *testing.T) {
	f := newFakeAPI()
	f.users["tok-a"] = authnv1.UserInfo{Username: saA}
	f.grants[saA+"/team-a"] = true
	h := newHandler(t, f, Config{Namespace: "{http.request.uri.query.namespace}",
		ResourceAttributes: &ResourceAttributes{Verb: "get", Resource: "namespaces", Name: "x"}}, nil)
	// The header is not where the namespace is read from: ignored, not trusted.
	o := serve(t, h, req("/api/v1/query?namespace=team-a", "tok-a", "team-b"))
	if o.status != 200 || o.tenantVar != "team-a" {
		t.Fatalf("got %d, var %q", o.status, o.tenantVar)
	}
	if o.header != "team-b" {
		t.Fatalf("header rewritten although the namespace is not read from it: %q", o.header)
	}
	f.mu.Lock()
	got := *f.sars[0].ResourceAttributes
	f.mu.Unlock()
	if got != (authzv1.ResourceAttributes{Namespace: "team-a", Verb: "get", Resource: "namespaces", Name: "x"}) {
		t.Fatalf("resource attributes %+v", got)
	}
	// Query parameter absent: the SA's own namespace.
	if o := serve(t, h, req("/api/v1/query", "tok-a", "team-b")); o.status != 200 || o.tenantVar != "team-a" {
		t.Fatalf("SA default: %d, var %q", o.status, o.tenantVar)
	}
	// A repeated header is one comma-joined value: refused.
	r := req("/", "tok-a", "")
	r.Header.Add("X-Tenant-Namespace", "team-a")
	r.Header.Add("X-Tenant-Namespace", "team-b")
	h2 := newHandler(t, f, Config{}, nil)
	if o := serve(t, h2, r); o.status != 400 {
		t.Fatalf("repeated header: %d", o.status)
	}
}

func TestUnmarshalCaddyfile(t *testing.T) {
	d := caddyfile.NewTestDispenser(`authenticate_kubernetes {
		kubeconfig /etc/kube/config
		namespace {http.request.uri.query.namespace}
		resource_attributes {
			verb create
			group metrics.k8s.io
			resource pods
		}
		cache_ttl 10s
		denied_cache_ttl 2s
		cache_max_entries 50
		timeout 3s
	}`)
	var h Handler
	if err := h.UnmarshalCaddyfile(d); err != nil {
		t.Fatal(err)
	}
	want := Config{Kubeconfig: "/etc/kube/config", Namespace: "{http.request.uri.query.namespace}",
		ResourceAttributes: &ResourceAttributes{Verb: "create", Group: "metrics.k8s.io", Resource: "pods"},
		CacheTTL:           caddy.Duration(10 * time.Second), DeniedCacheTTL: caddy.Duration(2 * time.Second),
		CacheMaxEntries: 50, Timeout: caddy.Duration(3 * time.Second)}
	got := h.Config
	if *got.ResourceAttributes != *want.ResourceAttributes {
		t.Fatalf("resource attributes %+v", got.ResourceAttributes)
	}
	got.ResourceAttributes, want.ResourceAttributes = nil, nil
	if got != want {
		t.Fatalf("got %+v\nwant %+v", got, want)
	}
	for _, bad := range []string{
		"authenticate_kubernetes arg",
		"authenticate_kubernetes {\n bogus 1\n}",
		"authenticate_kubernetes {\n cache_ttl soon\n}",
		"authenticate_kubernetes {\n cache_max_entries 0\n}",
		"authenticate_kubernetes {\n resource_attributes {\n group x\n }\n}",
		"authenticate_kubernetes {\n resource_attributes {\n verb get\n resource pods\n color red\n }\n}",
		"authenticate_kubernetes {\n namespace\n}",
	} {
		var h Handler
		if err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser(bad)); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
}

func TestDefaults(t *testing.T) {
	f := newFakeAPI()
	h := newHandler(t, f, Config{}, nil)
	if h.Namespace != DefaultNamespace || *h.ResourceAttributes != (ResourceAttributes{Verb: "get", Group: "metrics.k8s.io", Resource: "pods"}) ||
		h.rv.ttl != 30*time.Second || h.rv.deniedTTL != 5*time.Second || h.CacheMaxEntries != DefaultCacheMaxEntries {
		t.Fatalf("defaults: %+v, rv ttl %v/%v", h.Config, h.rv.ttl, h.rv.deniedTTL)
	}
	h = newHandler(t, f, Config{CacheTTL: caddy.Duration(time.Second)}, nil)
	if h.rv.deniedTTL != time.Second {
		t.Fatalf("denied ttl %v exceeds cache_ttl", h.rv.deniedTTL)
	}
	// Provision from a kubeconfig needs no network.
	_, err := newReviewer(&Config{Kubeconfig: "/nonexistent"}, nil, zap.NewNop(), nil)
	if err == nil {
		t.Fatal("a missing kubeconfig provisioned")
	}
}

func TestProvider(t *testing.T) {
	f := newFakeAPI()
	f.users["tok-a"] = authnv1.UserInfo{Username: saA}
	f.grants[saA+"/team-a"] = true
	p := &Provider{client: f.client, logger: zap.NewNop()}
	rv, err := newReviewer(&p.Config, p.client, p.logger, nil)
	if err != nil {
		t.Fatal(err)
	}
	p.rv = rv
	call := func(token, ns string) (provUser, bool, error) {
		w := httptest.NewRecorder()
		r := caddyhttp.PrepareRequest(req("/", token, ns), caddy.NewReplacer(), w, nil)
		u, ok, err := p.Authenticate(w, r)
		return provUser{u.ID, u.Metadata["namespace"]}, ok, err
	}
	if u, ok, err := call("tok-a", ""); !ok || err != nil || u.id != saA || u.ns != "team-a" {
		t.Fatalf("allowed: %+v %v %v", u, ok, err)
	}
	if _, ok, err := call("tok-a", "team-b"); ok || err != nil {
		t.Fatalf("denied: %v %v", ok, err)
	}
	if _, ok, err := call("", "team-a"); ok || err != nil {
		t.Fatalf("no token: %v %v", ok, err)
	}
	f.set(func() { f.fail = true })
	if _, ok, err := call("tok-b", "team-a"); ok || err == nil {
		t.Fatalf("API down: %v %v", ok, err)
	}
}

type provUser struct{ id, ns string }
