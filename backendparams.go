package promtenant

import (
	"fmt"
	"maps"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/common/model"

	"github.com/prom-tenant/caddy-prom-tenant/internal/promapi"
)

// backendParam is a parameter of an engine behind the proxy that the
// operator may let through (the BackendParams option). Each one only
// changes how the engine reads or merges the series a rewritten request
// already selects, never which series: so none can widen a tenant's view.
type backendParam struct {
	backend backendKind // the engine that reads it
	kind    param       // single, or multi (replicaLabels[])
	// check validates one value, so that garbage gets the proxy's clear
	// 400 rather than whatever the engine makes of it.
	check func(string) error
	// endpoints are those it is forwarded on. On the others it is accepted
	// and dropped: the engine ignores it there (dedup and replicaLabels[]
	// on label names and values), or leaves it out of its cache key (Thanos
	// Query Frontend keys series and labels answers by their matchers only,
	// so a replicaLabels[] sent with one would decide the cached answer of
	// every request like it), and Grafana sends its custom query parameters
	// with every request.
	endpoints []string
	// falseEndpoints are those it is forwarded on only when false. Thanos
	// reads partial_response on series, labels and label values, and
	// defaults to true: dropping false would answer partially without a
	// word. A false answer is complete or an error (never cached), so the
	// cache key leaving it out cannot decide another request's answer;
	// true could, so it is dropped there.
	falseEndpoints []string
}

// The endpoints backend parameters are forwarded on.
var (
	queryEndpoints         = []string{"/api/v1/query", "/api/v1/query_range"}
	queryExemplarEndpoints = []string{"/api/v1/query", "/api/v1/query_range", "/api/v1/query_exemplars"}
	dedupEndpoints         = []string{"/api/v1/query", "/api/v1/query_range", "/api/v1/query_exemplars", "/api/v1/series"}
	seriesLabelsEndpoints  = []string{"/api/v1/series", "/api/v1/labels", labelValues.name}
)

// backendParamCatalogue is every parameter BackendParams may name.
var backendParamCatalogue = map[string]backendParam{
	// Thanos Query (pkg/api/query/v1.go). Query Frontend does not cache
	// series with dedup=false (roundtrip.go shouldCache); its query keys
	// hold the others.
	"dedup":                 {backendThanos, single, checkBool, dedupEndpoints, nil},
	"partial_response":      {backendThanos, single, checkBool, queryExemplarEndpoints, seriesLabelsEndpoints},
	"max_source_resolution": {backendThanos, single, checkResolution, queryEndpoints, nil},
	"engine":                {backendThanos, single, checkOneOf("prometheus", "thanos"), queryEndpoints, nil},
	"replicaLabels[]":       {backendThanos, multi, checkReplicaLabel, queryExemplarEndpoints, nil},
	// VictoriaMetrics (single node): read by its query APIs only.
	"nocache":        {backendVictoriaMetrics, single, checkBool, queryEndpoints, nil},
	"round_digits":   {backendVictoriaMetrics, single, checkInt, queryEndpoints, nil},
	"latency_offset": {backendVictoriaMetrics, single, checkDuration, queryEndpoints, nil},
}

// backendParamPresets are the names BackendParams takes for a whole
// engine's parameters.
var backendParamPresets = map[string][]string{
	"thanos":          {"dedup", "partial_response", "max_source_resolution", "engine", "replicaLabels[]"},
	"victoriametrics": {"nocache", "round_digits", "latency_offset"},
}

// engineNames name the engines in messages.
var engineNames = map[backendKind]string{backendThanos: "Thanos", backendVictoriaMetrics: "VictoriaMetrics"}

// enforcementParams are parameters with which an engine enforces tenancy
// itself: VictoriaMetrics ANDs extra_label and extra_filters[] into every
// selector. A tenant must never set them (the proxy's rewrite is the
// enforcement), and the operator cannot allow them.
var enforcementParams = map[string]string{
	"extra_label":     "VictoriaMetrics",
	"extra_filters":   "VictoriaMetrics",
	"extra_filters[]": "VictoriaMetrics",
}

// exposingParams are parameters with which an engine tells what a tenant
// must not know, and why: never let through.
var exposingParams = map[string]string{
	// Thanos Query's data.analysis names every store it asked (endpointAddr)
	// and prints the matchers its operators ran: the rewritten query.
	"analyze": "Thanos Query's analyze exposes the upstream's store addresses and the rewritten query, with the tenant's policy in it",
}

// parseBackendParams reads the BackendParams option: presets and
// parameter names of the catalogue. Anything else is an error, so that an
// operator can never let an arbitrary parameter through.
func parseBackendParams(names []string) (map[string]param, error) {
	return parseBackendParamsFor(backendKind(-1), names)
}

// parseBackendParamsFor is parseBackendParams for the backend: a parameter
// of another engine is an error, as that engine is not there to read it
// (backend -1: any engine, for the Caddyfile, which may set backend later).
func parseBackendParamsFor(backend backendKind, names []string) (map[string]param, error) {
	if len(names) == 0 {
		return nil, nil
	}
	allowed := map[string]param{}
	for _, n := range names {
		if engine, ok := enforcementParams[n]; ok {
			return nil, fmt.Errorf("backend_params: %q is an enforcement parameter of %s and is never let through: prom_tenant enforces the tenant's policy itself", n, engine)
		}
		if reason, ok := exposingParams[n]; ok {
			return nil, fmt.Errorf("backend_params: %q is never let through: %s", n, reason)
		}
		if preset, ok := backendParamPresets[n]; ok {
			for _, p := range preset {
				if err := checkParamBackend(backend, p); err != nil {
					return nil, err
				}
				allowed[p] = backendParamCatalogue[p].kind
			}
			continue
		}
		p, ok := backendParamCatalogue[n]
		if ok {
			if err := checkParamBackend(backend, n); err != nil {
				return nil, err
			}
		}
		if !ok {
			return nil, fmt.Errorf("backend_params: unknown parameter or preset %q: use the presets %s or the parameters %s",
				n, strings.Join(slices.Sorted(maps.Keys(backendParamPresets)), ", "),
				strings.Join(slices.Sorted(maps.Keys(backendParamCatalogue)), ", "))
		}
		allowed[n] = p.kind
	}
	return allowed, nil
}

// checkParamBackend refuses a parameter of another engine than backend:
// that one would ignore it, and a tenant believe it took effect.
func checkParamBackend(backend backendKind, name string) error {
	p := backendParamCatalogue[name]
	if backend < 0 || p.backend == backend {
		return nil
	}
	return fmt.Errorf("backend_params: %s is a %s parameter; set backend %s (the backend is %s, which does not read it)",
		name, engineNames[p.backend], p.backend, backend)
}

// forwardedBackendParam reports whether a backend parameter with the
// checked values goes upstream on the endpoint ep (see
// backendParam.endpoints and falseEndpoints).
func forwardedBackendParam(name string, values []string, ep *endpoint) bool {
	p := backendParamCatalogue[name]
	if slices.Contains(p.endpoints, ep.name) {
		return true
	}
	if !slices.Contains(p.falseEndpoints, ep.name) {
		return false
	}
	for _, v := range values {
		if b, err := strconv.ParseBool(v); err != nil || b {
			return false
		}
	}
	return len(values) > 0
}

// dropBackendParams takes out of a checked form the backend parameters
// not forwarded on ep.
func dropBackendParams(form url.Values, ep *endpoint) {
	for name, values := range form {
		if _, ok := backendParamCatalogue[name]; ok && !forwardedBackendParam(name, values, ep) {
			delete(form, name)
		}
	}
}

// checkBackendParam refuses a parameter the endpoint does not take unless
// the operator allowed it (allowed, from BackendParams) and its values are
// valid; enforcement parameters are refused whatever the option says. It
// returns how often the parameter may appear.
func checkBackendParam(allowed map[string]param, name, path string, values []string) (param, error) {
	if engine, ok := enforcementParams[name]; ok {
		return single, promapi.Refuse(promapi.BadRequest,
			"parameter %q is %s's own tenancy enforcement and is never forwarded: prom_tenant enforces the tenant's policy itself", name, engine)
	}
	if reason, ok := exposingParams[name]; ok {
		return single, promapi.Refuse(promapi.BadRequest, "parameter %q is never forwarded: %s", name, reason)
	}
	kind, ok := allowed[name]
	if !ok {
		if p, known := backendParamCatalogue[name]; known {
			return single, promapi.Refuse(promapi.BadRequest,
				"parameter %q (%s) is not allowed: the prom_tenant option backend_params lets it through", name, engineNames[p.backend])
		}
		return single, promapi.Refuse(promapi.BadRequest, "unknown parameter %q for %s", name, path)
	}
	for _, v := range values {
		if err := backendParamCatalogue[name].check(v); err != nil {
			return kind, promapi.Refuse(promapi.BadRequest, "invalid %s %q: %v", name, v, err)
		}
	}
	return kind, nil
}

func checkBool(s string) error {
	_, err := strconv.ParseBool(s)
	if err != nil {
		return fmt.Errorf("want true or false")
	}
	return nil
}

func checkInt(s string) error {
	if _, err := strconv.Atoi(s); err != nil {
		return fmt.Errorf("want an integer")
	}
	return nil
}

// checkDuration takes what Prometheus, Thanos and VictoriaMetrics all take
// for a duration: a number of seconds or a Prometheus duration (5m, 1h30m).
func checkDuration(s string) error {
	if f, err := strconv.ParseFloat(s, 64); err == nil && f >= 0 && f <= float64(1<<63-1)/float64(time.Second) {
		return nil
	}
	if _, err := model.ParseDuration(s); err == nil {
		return nil
	}
	return fmt.Errorf("want a duration such as 5m or a number of seconds")
}

// checkResolution is Thanos's max_source_resolution: a duration or auto.
func checkResolution(s string) error {
	if s == "auto" {
		return nil
	}
	if checkDuration(s) != nil {
		return fmt.Errorf("want auto, or a duration such as 5m or a number of seconds")
	}
	return nil
}

func checkOneOf(values ...string) func(string) error {
	return func(s string) error {
		if !slices.Contains(values, s) {
			return fmt.Errorf("want %s", strings.Join(values, " or "))
		}
		return nil
	}
}

// checkReplicaLabel takes a label name that is not reserved: deduplicating
// by __name__ would merge different metrics, and the proxy's own
// __prom_tenant_ labels are no replica's.
func checkReplicaLabel(s string) error {
	if !model.LegacyValidation.IsValidLabelName(s) {
		return fmt.Errorf("want a label name")
	}
	if strings.HasPrefix(s, "__") {
		return fmt.Errorf("a replica label is an external label, never a reserved __ name")
	}
	return nil
}
