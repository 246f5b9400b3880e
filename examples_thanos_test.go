package promtenant

import (
	"fmt"
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

// TestThanosExample checks examples/thanos/: its Caddyfile adapts with
// prom-tenant's modules (formatted: no warnings), authenticates before
// prom_tenant as the shipped configuration does, declares the Thanos backend
// with its replica label and parameters, and sends what it serves to Query Frontend's Service with an active health
// check on /-/ready and retries while a pod restarts. Its timeouts are checked
// with the other shipped configurations' (TestShippedTimeouts), and the
// manifest by the real kube-apiserver (e2e.TestManifestsApply).
func TestThanosExample(t *testing.T) {
	const f = "examples/thanos/configmap.yaml"
	var cm corev1.ConfigMap
	decodeStrict(t, manifests(t, f), "ConfigMap/prom-tenant-config", &cm)
	cfg := adaptCaddyfile(t, f, cm.Data["Caddyfile"])

	var order []string
	var promTenant, proxy map[string]any
	walkHandlers(cfg, func(h map[string]any) {
		name, _ := h["handler"].(string)
		order = append(order, name)
		switch name {
		case "prom_tenant":
			promTenant = h
		case "reverse_proxy":
			if proxy == nil {
				proxy = h
			}
		}
	})
	if promTenant == nil || proxy == nil {
		t.Fatalf("%s: no prom_tenant or no reverse_proxy: handlers %v", f, order)
	}
	if promTenant["backend"] != "thanos" {
		t.Errorf("%s: prom_tenant's backend is %v, want thanos", f, promTenant["backend"])
	}
	// As TestThanosChain runs it: without replica_labels the label APIs list
	// Query's replica label; without backend_params Grafana's Thanos
	// parameters are refused.
	if got := fmt.Sprint(promTenant["replica_labels"]); got != "[replica]" {
		t.Errorf("%s: prom_tenant's replica_labels are %s, want [replica] (Query's --query.replica-label)", f, got)
	}
	if got := fmt.Sprint(promTenant["backend_params"]); got != "[thanos]" {
		t.Errorf("%s: prom_tenant's backend_params are %s, want the thanos preset", f, got)
	}
	if i, j := slices.Index(order, "authenticate_kubernetes"), slices.Index(order, "prom_tenant"); i < 0 || i > j {
		t.Errorf("%s: handlers %v: authenticate_kubernetes must come before prom_tenant", f, order)
	}
	ups, _ := proxy["upstreams"].([]any)
	if len(ups) != 1 || ups[0].(map[string]any)["dial"] != "thanos-query-frontend.monitoring.svc:9090" {
		t.Errorf("%s: upstreams %v, want Query Frontend's Service", f, proxy["upstreams"])
	}
	hc, _ := proxy["health_checks"].(map[string]any)
	active, _ := hc["active"].(map[string]any)
	if active["uri"] != "/-/ready" {
		t.Errorf("%s: active health check %v, want /-/ready", f, active)
	}
	lb, _ := proxy["load_balancing"].(map[string]any)
	if lb["try_duration"] == nil {
		t.Errorf("%s: no lb_try_duration: a restarting frontend pod makes 502s", f)
	}
}

// walkHandlers calls fn on every HTTP handler of an adapted configuration,
// subroutes included; within a route list, in order.
func walkHandlers(v any, fn func(map[string]any)) {
	switch v := v.(type) {
	case map[string]any:
		if _, ok := v["handler"].(string); ok {
			fn(v)
		}
		for _, c := range v {
			walkHandlers(c, fn)
		}
	case []any:
		for _, c := range v {
			walkHandlers(c, fn)
		}
	}
}
