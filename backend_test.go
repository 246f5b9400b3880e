package promtenant

import (
	"strings"
	"testing"
)

// A JSON config naming an engine prom_tenant does not know is refused at
// load, not served as if it were Prometheus.
func TestBackendValidation(t *testing.T) {
	for _, name := range []string{"", "prometheus", "thanos", "victoriametrics"} {
		if err := (&Handler{Backend: name}).Validate(); err != nil {
			t.Errorf("backend %q: Validate() = %v", name, err)
		}
	}
	for _, name := range []string{"mimir", "Thanos", " prometheus"} {
		err := (&Handler{Backend: name}).Validate()
		if err == nil || !strings.Contains(err.Error(), "unknown backend") {
			t.Errorf("backend %q: Validate() = %v, want unknown backend", name, err)
		}
	}
}
