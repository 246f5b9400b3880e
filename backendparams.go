package promtenant

import (
	"fmt"
	"maps"
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
	engine string // the engine that reads it, for messages
	kind   param  // single, or multi (replicaLabels[])
	// check validates one value, so that garbage gets the proxy's clear
	// 400 rather than whatever the engine makes of it.
	check func(string) error
}

// backendParamCatalogue is every parameter BackendParams may name.
var backendParamCatalogue = map[string]backendParam{
	// Thanos Query (pkg/api/query/v1.go).
	"dedup":                 {"Thanos", single, checkBool},
	"partial_response":      {"Thanos", single, checkBool},
	"max_source_resolution": {"Thanos", single, checkResolution},
	"engine":                {"Thanos", single, checkOneOf("prometheus", "thanos")},
	"analyze":               {"Thanos", single, checkBool},
	"replicaLabels[]":       {"Thanos", multi, checkLabelName},
	// VictoriaMetrics (single node).
	"nocache":        {"VictoriaMetrics", single, checkBool},
	"round_digits":   {"VictoriaMetrics", single, checkInt},
	"latency_offset": {"VictoriaMetrics", single, checkDuration},
}

// backendParamPresets are the names BackendParams takes for a whole
// engine's parameters.
var backendParamPresets = map[string][]string{
	"thanos":          {"dedup", "partial_response", "max_source_resolution", "engine", "analyze", "replicaLabels[]"},
	"victoriametrics": {"nocache", "round_digits", "latency_offset"},
}

// enforcementParams are parameters with which an engine enforces tenancy
// itself: VictoriaMetrics ANDs extra_label and extra_filters[] into every
// selector. A tenant must never set them (the proxy's rewrite is the
// enforcement), and the operator cannot allow them.
var enforcementParams = map[string]string{
	"extra_label":     "VictoriaMetrics",
	"extra_filters":   "VictoriaMetrics",
	"extra_filters[]": "VictoriaMetrics",
}

// parseBackendParams reads the BackendParams option: presets and
// parameter names of the catalogue. Anything else is an error, so that an
// operator can never let an arbitrary parameter through.
func parseBackendParams(names []string) (map[string]param, error) {
	if len(names) == 0 {
		return nil, nil
	}
	allowed := map[string]param{}
	for _, n := range names {
		if engine, ok := enforcementParams[n]; ok {
			return nil, fmt.Errorf("backend_params: %q is an enforcement parameter of %s and is never let through: prom_tenant enforces the tenant's policy itself", n, engine)
		}
		if preset, ok := backendParamPresets[n]; ok {
			for _, p := range preset {
				allowed[p] = backendParamCatalogue[p].kind
			}
			continue
		}
		p, ok := backendParamCatalogue[n]
		if !ok {
			return nil, fmt.Errorf("backend_params: unknown parameter or preset %q: use the presets %s or the parameters %s",
				n, strings.Join(slices.Sorted(maps.Keys(backendParamPresets)), ", "),
				strings.Join(slices.Sorted(maps.Keys(backendParamCatalogue)), ", "))
		}
		allowed[n] = p.kind
	}
	return allowed, nil
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
	kind, ok := allowed[name]
	if !ok {
		if p, known := backendParamCatalogue[name]; known {
			return single, promapi.Refuse(promapi.BadRequest,
				"parameter %q (%s) is not allowed: the prom_tenant option backend_params lets it through", name, p.engine)
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

// checkDuration takes what Prometheus and Thanos take for a duration: a
// number of seconds or a Prometheus duration (5m, 1h30m); and Go's (1.5h).
func checkDuration(s string) error {
	if f, err := strconv.ParseFloat(s, 64); err == nil && f >= 0 && f <= float64(1<<63-1)/float64(time.Second) {
		return nil
	}
	if _, err := model.ParseDuration(s); err == nil {
		return nil
	}
	if d, err := time.ParseDuration(s); err == nil && d >= 0 {
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

func checkLabelName(s string) error {
	if !model.LegacyValidation.IsValidLabelName(s) {
		return fmt.Errorf("want a label name")
	}
	return nil
}
