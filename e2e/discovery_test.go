package e2e

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/prom-tenant/caddy-prom-tenant/internal/testenv"
)

// endpointSlice is a slice of service with one endpoint on hostport (port
// name "web").
func endpointSlice(ns, name, service, hostport string, ready bool) *discoveryv1.EndpointSlice {
	host, p, _ := net.SplitHostPort(hostport)
	n, _ := strconv.Atoi(p)
	portName, portNum := "web", int32(n)
	typ := discoveryv1.AddressTypeIPv4
	if strings.Contains(host, ":") {
		typ = discoveryv1.AddressTypeIPv6
	}
	return &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns,
			Labels: map[string]string{discoveryv1.LabelServiceName: service}},
		AddressType: typ,
		Ports:       []discoveryv1.EndpointPort{{Name: &portName, Port: &portNum}},
		Endpoints: []discoveryv1.Endpoint{{Addresses: []string{host},
			Conditions: discoveryv1.EndpointConditions{Ready: &ready}}},
	}
}

// TestUpstreamsFollowEndpointSlices runs bin/caddy with upstreams from
// EndpointSlices on a real API server. Test traffic may only go to loopback,
// which the API server refuses in EndpointSlices; so the endpoints use
// documentation addresses (192.0.2.0/24) that are never dialled: the upstream
// set is read from the watcher's log, and requests are sent only while no
// endpoint is ready (proxying itself is covered by every other e2e test).
func TestUpstreamsFollowEndpointSlices(t *testing.T) {
	api := testenv.SharedKubeAPIServer(t)
	e := &kubeEnv{api: api, client: kubernetes.NewForConfigOrDie(api.RESTConfig())}
	const ns = "discovery-e2e"
	e.namespace(t, ns)
	slices := e.client.DiscoveryV1().EndpointSlices(ns)
	for _, s := range []*discoveryv1.EndpointSlice{
		endpointSlice(ns, "prometheus-abc", "prometheus", "192.0.2.10:9090", false),
		endpointSlice(ns, "decoy-abc", "decoy", "192.0.2.20:9090", true), // another service: never selected
	} {
		_ = slices.Delete(t.Context(), s.Name, metav1.DeleteOptions{}) // a rerun against the same API server
		if _, err := slices.Create(t.Context(), s, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}

	c, port := startDiscoveryProxy(t, api, ns)
	// last renders the upstream set the watcher logged last.
	last := func() string {
		ch := upstreamChanges(c.LogPath)
		if len(ch) == 0 {
			return "<none>"
		}
		return fmt.Sprintf("%q", ch[len(ch)-1].Upstreams)
	}
	eventually(t, "the informer lists the slices before any request", 10*time.Second, func() bool { return len(upstreamChanges(c.LogPath)) > 0 })
	if got := last(); got != "[]" {
		t.Fatalf("upstreams with the only endpoint not ready: %s, want [] (the decoy service must not be selected)", got)
	}

	// No ready endpoint: the proxy answers in Prometheus's envelope and dials nothing.
	status, env, _ := do(t, request(t, "GET", fmt.Sprintf("http://127.0.0.1:%d/api/v1/query?query=up", port), "team-a", ""))
	if status != 503 || env.ErrorType != "unavailable" || !strings.Contains(env.Error, "no upstreams available") {
		t.Errorf("no ready endpoint: %d %+v", status, env)
	}

	setReady := func(ready bool) {
		t.Helper()
		s, err := slices.Get(t.Context(), "prometheus-abc", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		s.Endpoints[0].Conditions.Ready = &ready
		if _, err := slices.Update(t.Context(), s, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	setReady(true)
	eventually(t, "ready: the endpoint becomes an upstream", 5*time.Second, func() bool { return last() == `["192.0.2.10:9090"]` })
	setReady(false)
	eventually(t, "not ready: no upstream", 5*time.Second, func() bool { return last() == "[]" })
	status, env, _ = do(t, request(t, "GET", fmt.Sprintf("http://127.0.0.1:%d/api/v1/query?query=up", port), "team-a", ""))
	if status != 503 || env.ErrorType != "unavailable" {
		t.Errorf("not ready again: %d %+v", status, env)
	}
}

// startDiscoveryProxy runs bin/caddy with prom_tenant (tenants from
// examples/tenants) in front of upstreams discovered from the EndpointSlices
// of service "prometheus" in ns. It returns Caddy and the site's port.
func startDiscoveryProxy(t *testing.T, api *testenv.KubeAPIServer, ns string) (*testenv.Caddy, int) {
	t.Helper()
	port, admin := testenv.FreePort(t), testenv.FreePort(t)
	c := testenv.StartCaddy(t, fmt.Sprintf(`{
	admin 127.0.0.1:%d
	prom_tenancy {
		directory %s
	}
}

http://127.0.0.1:%d {
	prom_tenant
	reverse_proxy {
		dynamic kubernetes {
			kubeconfig %s
			namespace %s
			selector %s=prometheus
			port web
		}
	}
}
`, admin, tenantsDir, port, api.Kubeconfig, ns, discoveryv1.LabelServiceName))
	return c, port
}

// upstreamChange is one "kubernetes upstreams changed" line of Caddy's log:
// the upstream set and when Caddy logged it.
type upstreamChange struct {
	Upstreams []string `json:"upstreams"`
	TS        float64  `json:"ts"`
}

// upstreamChanges returns the watcher's upstream changes logged so far, in order.
func upstreamChanges(logPath string) []upstreamChange {
	b, _ := os.ReadFile(logPath)
	var out []upstreamChange
	for _, line := range strings.Split(string(b), "\n") {
		if !strings.Contains(line, "kubernetes upstreams changed") {
			continue
		}
		var ch upstreamChange
		if json.Unmarshal([]byte(line), &ch) == nil {
			out = append(out, ch)
		}
	}
	return out
}
