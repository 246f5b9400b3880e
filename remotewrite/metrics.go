package remotewrite

import (
	"github.com/prometheus/client_golang/prometheus"
)

// copyMetrics are the copiers' metrics, by tenant; process.tenants deletes
// a tenant's gauges when its last copier stops.
type copyMetrics struct {
	sent, failed, dropped, resentRefused, saveFailures *prometheus.CounterVec
	pending, lastSuccess, copiers, leaseHeld           *prometheus.GaugeVec
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
	resentRefused: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "prometheus_proxy_remote_write_samples_resent_refused_total",
		Help: "Samples of batches resent after their answer was lost (a timeout, a restart) that the target refused, by tenant and reason: most likely held already, not lost.",
	}, []string{"tenant", "reason"}),
	saveFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "prometheus_proxy_remote_write_state_save_failures_total",
		Help: "Saves of a copy's progress to state_dir that failed, by tenant; the copy sends nothing until a save works.",
	}, []string{"tenant"}),
	copiers: prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "prometheus_proxy_remote_write_copiers",
		Help: "Copiers by tenant and state: starting, copying, retrying (the target or source fails; retried), state_unwritable (progress cannot be saved; nothing is sent), refused (the target is invalid).",
	}, []string{"tenant", "state"}),
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
	return []prometheus.Collector{m.sent, m.failed, m.dropped, m.resentRefused, m.saveFailures, m.pending, m.lastSuccess, m.copiers, m.leaseHeld}
}
