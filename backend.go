package promtenant

import (
	"fmt"
	"strings"
)

// backendKind is the engine behind reverse_proxy, as the Backend option
// declares it.
type backendKind int

const (
	backendPrometheus backendKind = iota
	backendThanos
	backendVictoriaMetrics
)

// backendNames are the Backend option's values, in backendKind order.
var backendNames = [...]string{"prometheus", "thanos", "victoriametrics"}

func (k backendKind) String() string { return backendNames[k] }

// parseBackend reads the Backend option; "" is Prometheus.
func parseBackend(name string) (backendKind, error) {
	if name == "" {
		return backendPrometheus, nil
	}
	for i, n := range backendNames {
		if name == n {
			return backendKind(i), nil
		}
	}
	return backendPrometheus, fmt.Errorf("unknown backend %q: use one of %s", name, strings.Join(backendNames[:], ", "))
}
