package remotewrite

import (
	"github.com/prometheus/client_golang/prometheus"
)

// copyMetrics are the copiers' metrics, by tenant; process.tenants deletes
// a tenant's gauges when its last copier stops.
type copyMetrics struct {
	sent, failed, dropped *prometheus.CounterVec
	pending, lastSuccess  *prometheus.GaugeVec
	leaseHeld             *prometheus.GaugeVec
}

// metrics are created once per process and registered into each config's
// registry (a new one per config load), so their values survive reloads.
var metrics = &copyMetrics{
	sent: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "prometheus_proxy_remote_write_samples_sent_total",
		Help: "Samples the targets acknowledged, by tenant (for a Pushgateway: series values pushed).",
	}, []string{"tenant"}),
	failed: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "prometheus_proxy_remote_write_samples_failed_total",
		Help: "Samples in write attempts that failed and will be retried, by tenant and reason.",
	}, []string{"tenant", "reason"}),
	dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "prometheus_proxy_remote_write_samples_dropped_total",
		Help: "Samples given up for good, by tenant and reason (a target refusing them with a 4xx, a Pushgateway given a native histogram).",
	}, []string{"tenant", "reason"}),
	pending: prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "prometheus_proxy_remote_write_pending_samples",
		Help: "Samples read from the source and not yet acknowledged by the target, by tenant.",
	}, []string{"tenant"}),
	lastSuccess: prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "prometheus_proxy_remote_write_last_success_timestamp_seconds",
		Help: "When a copy pass of the tenant last completed, as a Unix time.",
	}, []string{"tenant"}),
	leaseHeld: prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "prometheus_proxy_remote_write_lease_held",
		Help: "1 while this replica holds the Lease (namespace/name) and copies its tenants, 0 while another replica does; only with leader election.",
	}, []string{"lease"}),
}

// collectors are the metrics, for registering.
func (m *copyMetrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{m.sent, m.failed, m.dropped, m.pending, m.lastSuccess, m.leaseHeld}
}
