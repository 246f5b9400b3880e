package metricreg

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

func TestRegister(t *testing.T) {
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "x_total", Help: "x"})
	reg := prometheus.NewRegistry()
	if err := Register(reg, c); err != nil {
		t.Fatal(err)
	}
	if err := Register(reg, c); err != nil {
		t.Errorf("the same collector again (a config reload): %v", err)
	}
	other := prometheus.NewGauge(prometheus.GaugeOpts{Name: "x_total", Help: "another x"})
	if err := Register(reg, other); err == nil {
		t.Error("another collector with the same name: no error")
	}
	if err := Register(nil, c); err != nil {
		t.Errorf("no registry: %v", err)
	}
}
