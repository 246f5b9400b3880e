package discovery

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
)

func ptr[T any](v T) *T { return &v }

func endpoint(ready, terminating *bool, addrs ...string) discoveryv1.Endpoint {
	return discoveryv1.Endpoint{Addresses: addrs, Conditions: discoveryv1.EndpointConditions{Ready: ready, Terminating: terminating}}
}

func slice(typ discoveryv1.AddressType, ports []discoveryv1.EndpointPort, eps ...discoveryv1.Endpoint) *discoveryv1.EndpointSlice {
	return &discoveryv1.EndpointSlice{AddressType: typ, Ports: ports, Endpoints: eps}
}

func port(name string, n int32) discoveryv1.EndpointPort {
	p := discoveryv1.EndpointPort{Port: &n}
	if name != "" {
		p.Name = &name
	}
	return p
}

func TestAddresses(t *testing.T) {
	web := []discoveryv1.EndpointPort{port("web", 9090), port("metrics", 8080)}
	tests := []struct {
		name   string
		slices []*discoveryv1.EndpointSlice
		port   string
		want   []string
	}{
		{"conditions", []*discoveryv1.EndpointSlice{slice(discoveryv1.AddressTypeIPv4, web,
			endpoint(nil, nil, "10.0.0.1"),              // nil ready means ready
			endpoint(ptr(true), nil, "10.0.0.2"),        // ready
			endpoint(ptr(false), nil, "10.0.0.3"),       // not ready
			endpoint(ptr(true), ptr(true), "10.0.0.4"),  // ready but terminating
			endpoint(ptr(false), ptr(true), "10.0.0.5"), // terminating
			endpoint(ptr(true), ptr(false), "10.0.0.6"), // explicitly not terminating
			endpoint(nil, nil),                          // no address
			endpoint(nil, nil, "not-an-ip", ""),         // garbage in an IPv4 slice
		)}, "web", []string{"10.0.0.1:9090", "10.0.0.2:9090", "10.0.0.6:9090"}},
		{"named port", []*discoveryv1.EndpointSlice{slice(discoveryv1.AddressTypeIPv4, web, endpoint(nil, nil, "10.0.0.1"))},
			"metrics", []string{"10.0.0.1:8080"}},
		{"numbered port", []*discoveryv1.EndpointSlice{slice(discoveryv1.AddressTypeIPv4, web, endpoint(nil, nil, "10.0.0.1"))},
			"8080", []string{"10.0.0.1:8080"}},
		{"unnamed port by number", []*discoveryv1.EndpointSlice{slice(discoveryv1.AddressTypeIPv4, []discoveryv1.EndpointPort{port("", 9090)}, endpoint(nil, nil, "10.0.0.1"))},
			"9090", []string{"10.0.0.1:9090"}},
		{"unnamed port is not named", []*discoveryv1.EndpointSlice{slice(discoveryv1.AddressTypeIPv4, []discoveryv1.EndpointPort{port("", 9090)}, endpoint(nil, nil, "10.0.0.1"))},
			"web", nil},
		{"missing port", []*discoveryv1.EndpointSlice{slice(discoveryv1.AddressTypeIPv4, web, endpoint(nil, nil, "10.0.0.1"))},
			"grpc", nil},
		{"missing number", []*discoveryv1.EndpointSlice{slice(discoveryv1.AddressTypeIPv4, web, endpoint(nil, nil, "10.0.0.1"))},
			"9091", nil},
		{"udp port is skipped", []*discoveryv1.EndpointSlice{slice(discoveryv1.AddressTypeIPv4,
			[]discoveryv1.EndpointPort{{Name: ptr("web"), Port: ptr(int32(53)), Protocol: ptr(corev1.ProtocolUDP)}, {Name: ptr("web"), Port: ptr(int32(9090)), Protocol: ptr(corev1.ProtocolTCP)}},
			endpoint(nil, nil, "10.0.0.1"))}, "web", []string{"10.0.0.1:9090"}},
		{"nil port number is skipped", []*discoveryv1.EndpointSlice{slice(discoveryv1.AddressTypeIPv4,
			[]discoveryv1.EndpointPort{{Name: ptr("web")}}, endpoint(nil, nil, "10.0.0.1"))}, "web", nil},
		{"ipv6", []*discoveryv1.EndpointSlice{slice(discoveryv1.AddressTypeIPv6, web,
			endpoint(nil, nil, "fd00::2"), endpoint(nil, nil, "fd00:0::1"))},
			"web", []string{"[fd00::1]:9090", "[fd00::2]:9090"}},
		{"fqdn", []*discoveryv1.EndpointSlice{slice(discoveryv1.AddressTypeFQDN, web, endpoint(nil, nil, "prom-0.prom.monitoring.svc"))},
			"web", []string{"prom-0.prom.monitoring.svc:9090"}},
		{"dedupe and sort across slices", []*discoveryv1.EndpointSlice{
			slice(discoveryv1.AddressTypeIPv4, web, endpoint(nil, nil, "10.0.0.9", "10.0.0.10"), endpoint(nil, nil, "10.0.0.9")),
			nil,
			slice(discoveryv1.AddressTypeIPv4, web, endpoint(ptr(true), nil, "10.0.0.10"), endpoint(nil, nil, "10.0.0.1")),
			slice(discoveryv1.AddressTypeIPv4, []discoveryv1.EndpointPort{port("web", 9091)}, endpoint(nil, nil, "10.0.0.9")),
		}, "web", []string{"10.0.0.1:9090", "10.0.0.9:9090", "10.0.0.9:9091", "10.0.0.10:9090"}},
		{"mixed families sort numerically, names last", []*discoveryv1.EndpointSlice{
			slice(discoveryv1.AddressTypeFQDN, web, endpoint(nil, nil, "a.example")),
			slice(discoveryv1.AddressTypeIPv6, web, endpoint(nil, nil, "fd00::1", "::1")),
			slice(discoveryv1.AddressTypeIPv4, web, endpoint(nil, nil, "192.168.0.1", "10.0.0.2")),
		}, "web", []string{"10.0.0.2:9090", "192.168.0.1:9090", "[::1]:9090", "[fd00::1]:9090", "a.example:9090"}},
		{"no slices", nil, "web", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := parsePort(tt.port)
			if err != nil {
				t.Fatal(err)
			}
			if got := addresses(tt.slices, p); !slices.Equal(got, tt.want) {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestParsePort(t *testing.T) {
	for _, ok := range []string{"web", "http-metrics", "9090", "1", "65535"} {
		if _, err := parsePort(ok); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	for _, bad := range []string{"", "0", "65536", "-1", "Web", "host:80", "a b"} {
		if _, err := parsePort(bad); err == nil {
			t.Errorf("%q: accepted", bad)
		}
	}
}

func TestUnmarshalCaddyfile(t *testing.T) {
	tests := []struct {
		name, input string
		want        KubernetesUpstreams
		err         string
	}{
		{name: "full", input: `kubernetes {
			kubeconfig /etc/kube/config
			namespace monitoring
			selector kubernetes.io/service-name=prometheus
			port web
			scheme https
			kind endpointslices
		}`, want: KubernetesUpstreams{Kubeconfig: "/etc/kube/config", Namespaces: []string{"monitoring"},
			Selector: "kubernetes.io/service-name=prometheus", Port: "web", Scheme: "https", Kind: "endpointslices"}},
		{name: "namespaces and set selector", input: `kubernetes {
			namespaces a b
			namespace c
			selector app in (x, y),tier!=db
			port 9090
		}`, want: KubernetesUpstreams{Namespaces: []string{"a", "b", "c"}, Selector: "app in (x, y),tier!=db", Port: "9090"}},
		{name: "no namespace", input: "kubernetes {\n port web\n}", err: "namespace is required"},
		{name: "no port", input: "kubernetes {\n namespace a\n}", err: "port is required"},
		{name: "empty block", input: "kubernetes", err: "namespace is required"},
		{name: "argument", input: "kubernetes a {\n namespace a\n port web\n}", err: "wrong argument count"},
		{name: "two ports", input: "kubernetes {\n namespace a\n port web\n port 80\n}", err: "already specified"},
		{name: "port with two args", input: "kubernetes {\n namespace a\n port web 80\n}", err: "wrong argument count"},
		{name: "bad port", input: "kubernetes {\n namespace a\n port 70000\n}", err: "out of range"},
		{name: "namespace with two", input: "kubernetes {\n namespace a b\n port web\n}", err: "use namespaces"},
		{name: "namespace without arg", input: "kubernetes {\n namespace\n port web\n}", err: "wrong argument count"},
		{name: "bad selector", input: "kubernetes {\n namespace a\n selector a=(b\n port web\n}", err: "selector"},
		{name: "bad scheme", input: "kubernetes {\n namespace a\n port web\n scheme ftp\n}", err: "want http or https"},
		{name: "bad kind", input: "kubernetes {\n namespace a\n port web\n kind nodes\n}", err: "want endpointslices, pods or services"},
		{name: "unknown", input: "kubernetes {\n namespace a\n port web\n health_path /-/ready\n}", err: "unknown subdirective"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got KubernetesUpstreams
			err := got.UnmarshalCaddyfile(caddyfile.NewTestDispenser(tt.input))
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("error %v, want one containing %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.Kubeconfig != tt.want.Kubeconfig || !slices.Equal(got.Namespaces, tt.want.Namespaces) || got.Selector != tt.want.Selector ||
				got.Port != tt.want.Port || got.Scheme != tt.want.Scheme || got.Kind != tt.want.Kind {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

// kubeconfig writes a kubeconfig pointing at an address nothing listens on.
func kubeconfig(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "kubeconfig")
	cfg := `apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:1"}}]
users: [{name: u, user: {token: x}}]
contexts: [{name: x, context: {cluster: c, user: u}}]
current-context: x
`
	if err := os.WriteFile(p, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestProvisionValidatesAndShares(t *testing.T) {
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	kc := kubeconfig(t)
	for _, bad := range []KubernetesUpstreams{
		{Kubeconfig: kc, Port: "web"},
		{Kubeconfig: kc, Namespaces: []string{"a"}},
		{Kubeconfig: kc, Namespaces: []string{"a"}, Port: "web", Kind: "nodes"},
		{Kubeconfig: kc, Namespaces: []string{"a"}, Port: "web", Scheme: "ftp"},
		{Kubeconfig: kc, Namespaces: []string{"a"}, Port: "web", Selector: "a=(b"},
		{Kubeconfig: filepath.Join(t.TempDir(), "missing"), Namespaces: []string{"a"}, Port: "web"},
	} {
		if err := bad.Provision(ctx); err == nil {
			t.Errorf("%+v: provisioned", bad)
			_ = bad.Cleanup()
		}
	}

	a := &KubernetesUpstreams{Kubeconfig: kc, Namespaces: []string{"b", "a"}, Selector: "x=y", Port: "web"}
	b := &KubernetesUpstreams{Kubeconfig: kc, Namespaces: []string{"a", "b"}, Selector: "x = y", Port: "web"}
	c := &KubernetesUpstreams{Kubeconfig: kc, Namespaces: []string{"a", "b"}, Selector: "x=y", Port: "9090"}
	for _, k := range []*KubernetesUpstreams{a, b, c} {
		if err := k.Provision(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if a.watcher != b.watcher {
		t.Error("same settings (namespaces reordered, selector respelled) got different watchers")
	}
	if a.watcher == c.watcher {
		t.Error("different ports share a watcher")
	}
	w := a.watcher

	// Before the first sync (here: never, nothing listens): empty, no error, no blocking.
	ups, err := a.GetUpstreams(nil)
	if err != nil || ups == nil || len(ups) != 0 {
		t.Fatalf("before sync: %v, %v; want an empty list", ups, err)
	}

	// A snapshot is handed out as fresh Upstream values, sorted.
	w.snapshot.Store(&snapshot{addrs: []string{"10.0.0.1:9090", "10.0.0.2:9090"}})
	var wg sync.WaitGroup
	results := make([][]string, 8)
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			u1, _ := b.GetUpstreams(nil)
			u2, _ := b.GetUpstreams(nil)
			for j := range u1 {
				if u1[j] == u2[j] {
					t.Error("GetUpstreams returned the same *Upstream twice")
				}
				u1[j].MaxRequests = j // callers may mutate what they got
				results[i] = append(results[i], u1[j].Dial)
			}
		}()
	}
	wg.Wait()
	for _, r := range results {
		if !slices.Equal(r, []string{"10.0.0.1:9090", "10.0.0.2:9090"}) {
			t.Errorf("got %q", r)
		}
	}

	// The watcher stays while a user is left, and stops with the last.
	for _, k := range []*KubernetesUpstreams{a, c} {
		if err := k.Cleanup(); err != nil {
			t.Fatal(err)
		}
	}
	if w.loop.Context().Err() != nil {
		t.Fatal("watcher stopped while b still uses it")
	}
	if err := b.Cleanup(); err != nil {
		t.Fatal(err)
	}
	if w.loop.Context().Err() == nil {
		t.Fatal("watcher still running after its last user cleaned up")
	}
	if ups, _ := b.GetUpstreams(nil); len(ups) != 0 {
		t.Fatalf("after cleanup: %v", ups)
	}
}
