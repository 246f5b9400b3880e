package discovery

import (
	"encoding/json"
	"maps"
	"net/http"
	"net/http/httptest"
	"reflect"
	"slices"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
)

func TestNotServingAddresses(t *testing.T) {
	yes, no := ptr(true), ptr(false)
	ss := []*discoveryv1.EndpointSlice{
		slice(discoveryv1.AddressTypeIPv4, []discoveryv1.EndpointPort{port("web", 9090)},
			endpoint(yes, nil, "10.0.0.1"), endpoint(no, nil, "10.0.0.2"), endpoint(yes, yes, "10.0.0.3"), endpoint(no, nil, "10.0.0.4")),
		// 10.0.0.4 is also ready in another slice: it is served, not "not ready".
		slice(discoveryv1.AddressTypeIPv4, []discoveryv1.EndpointPort{port("web", 9090)}, endpoint(nil, nil, "10.0.0.4")),
	}
	if got, want := notServingAddresses(ss, portSpec{name: "web"}), []string{"10.0.0.2:9090", "10.0.0.3:9090"}; !slices.Equal(got, want) {
		t.Errorf("not serving = %v, want %v", got, want)
	}
	pods := []*corev1.Pod{
		pod("a", "10.0.1.1", corev1.PodRunning, corev1.ConditionTrue, false),
		pod("b", "10.0.1.2", corev1.PodRunning, corev1.ConditionFalse, false),
		pod("c", "10.0.1.3", corev1.PodRunning, corev1.ConditionTrue, true),
		pod("d", "", corev1.PodPending, corev1.ConditionFalse, false), // no IP: nothing to list
	}
	if got, want := notReadyPodAddresses(pods, portSpec{number: 9090}), []string{"10.0.1.2:9090", "10.0.1.3:9090"}; !slices.Equal(got, want) {
		t.Errorf("not ready pods = %v, want %v", got, want)
	}
}

// TestBackendStates drives a probing watcher by hand and checks what the
// admin route and the gauge report for each state.
func TestBackendStates(t *testing.T) {
	good := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	defer good.Close()
	bad := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusServiceUnavailable) }))
	defer bad.Close()
	g, b := hostport(t, good), hostport(t, bad)

	w := probeWatcher("/-/ready")
	w.opts.kind, w.opts.namespaces, w.opts.selector, w.opts.port = KindEndpointSlices, []string{"monitoring"}, "app=prometheus", portSpec{name: "web"}
	const key = "test|TestBackendStates"
	if _, _, err := watchers.LoadOrNew(key, func() (caddy.Destructor, error) { return w, nil }); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = watchers.Delete(key) })

	w.notReady = []string{"192.0.2.9:9090"}
	w.setDiscovered(sortedAddrs(g, b))
	w.probeRound(w.loop.Context())                       // g passes, b fails
	w.setDiscovered(sortedAddrs(g, b, "192.0.2.1:9090")) // new: pending until probed

	source := "endpointslices monitoring app=prometheus port web"
	want := SourceView{Source: source, Kind: KindEndpointSlices, Namespaces: []string{"monitoring"}, Selector: "app=prometheus",
		Port: "web", HealthURI: "/-/ready", Synced: true}
	for _, a := range sortedAddrs(g, b, "192.0.2.1:9090", "192.0.2.9:9090") {
		switch a {
		case g:
			want.Backends = append(want.Backends, BackendView{Address: a, Ready: true, Probe: "passed", Serving: true})
		case b:
			want.Backends = append(want.Backends, BackendView{Address: a, Ready: true, Probe: "failed"})
		case "192.0.2.1:9090":
			want.Backends = append(want.Backends, BackendView{Address: a, Ready: true, Probe: "pending", Serving: true})
		default:
			want.Backends = append(want.Backends, BackendView{Address: a})
		}
	}

	rec := httptest.NewRecorder()
	if err := (adminAPI{}).Routes()[0].Handler.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/prom_tenant/backends", nil)); err != nil {
		t.Fatal(err)
	}
	var got struct{ Sources []SourceView }
	if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
		t.Fatalf("not JSON: %q", rec.Body)
	}
	i := slices.IndexFunc(got.Sources, func(s SourceView) bool { return s.Source == source })
	if i < 0 {
		t.Fatalf("sources %+v: %q missing", got.Sources, source)
	}
	if !reflect.DeepEqual(got.Sources[i], want) {
		t.Errorf("source =\n%+v\nwant\n%+v", got.Sources[i], want)
	}

	reg := prometheus.NewPedanticRegistry()
	if err := reg.Register(collector); err != nil {
		t.Fatal(err)
	}
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	gauges := map[string]float64{}
	for _, f := range fams {
		for _, m := range f.GetMetric() {
			var src, state string
			for _, l := range m.GetLabel() {
				switch l.GetName() {
				case "source":
					src = l.GetValue()
				case "state":
					state = l.GetValue()
				}
			}
			if src == source {
				gauges[state] = m.GetGauge().GetValue()
			}
		}
	}
	if wantG := map[string]float64{"serving": 2, "probe_failed": 1, "not_ready": 1}; !maps.Equal(gauges, wantG) {
		t.Errorf("prometheus_proxy_targets_discovered = %v, want %v", gauges, wantG)
	}

	if err := (adminAPI{}).Routes()[0].Handler.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodDelete, "/prom_tenant/backends", nil)); err == nil {
		t.Error("DELETE answered; want 405")
	}
}

func sortedAddrs(a ...string) []string {
	slices.SortFunc(a, compareAddr)
	return a
}
