package remotewrite

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are created once per process and registered into each config's
// registry (a new one per config load), so their values survive reloads.
var metrics = struct {
	sent, failed, dropped *prometheus.CounterVec
	pending, lastSuccess  *prometheus.GaugeVec
}{
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
}

var collectors = []prometheus.Collector{metrics.sent, metrics.failed, metrics.dropped, metrics.pending, metrics.lastSuccess}

// tenantGauges counts the copiers of each tenant, so that a tenant's gauges
// are deleted when its last copier stops (cardinality stays with the tenants
// that copy).
var tenantGauges = struct {
	sync.Mutex
	copiers map[string]int
}{copiers: map[string]int{}}

func gaugesAcquire(tenant string) {
	tenantGauges.Lock()
	defer tenantGauges.Unlock()
	tenantGauges.copiers[tenant]++
}

func gaugesRelease(tenant string) {
	tenantGauges.Lock()
	defer tenantGauges.Unlock()
	tenantGauges.copiers[tenant]--
	if tenantGauges.copiers[tenant] <= 0 {
		delete(tenantGauges.copiers, tenant)
		metrics.pending.DeleteLabelValues(tenant)
		metrics.lastSuccess.DeleteLabelValues(tenant)
	}
}
