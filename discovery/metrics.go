package discovery

import (
	"github.com/prometheus/client_golang/prometheus"
)

// targetsCollector reports the live watchers' backends at scrape time, so
// that nothing is left behind by a watcher that stopped. It is created once
// per process and registered into each config's registry.
type targetsCollector struct{ desc *prometheus.Desc }

var collector = &targetsCollector{desc: prometheus.NewDesc("prometheus_proxy_targets_discovered",
	"Backends discovered from the Kubernetes API by kubernetes upstreams, by source (kind, namespaces, selector, annotations, port) "+
		"and state: serving (handed to reverse_proxy), probe_failed (ready, but its health probe failed), not_ready (not ready or terminating).",
	[]string{"source", "state"}, nil)}

// Describe implements prometheus.Collector.
func (c *targetsCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

// Collect implements prometheus.Collector. Watchers that differ only in
// their connection (kubeconfig) add up under one source.
func (c *targetsCollector) Collect(ch chan<- prometheus.Metric) {
	type key struct{ source, state string }
	counts := map[key]int{}
	for _, v := range views() {
		for _, st := range []string{"serving", "probe_failed", "not_ready"} {
			counts[key{v.Source, st}] += 0
		}
		for _, b := range v.Backends {
			switch {
			case b.Serving:
				counts[key{v.Source, "serving"}]++
			case b.Ready:
				counts[key{v.Source, "probe_failed"}]++
			default:
				counts[key{v.Source, "not_ready"}]++
			}
		}
	}
	for k, n := range counts {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(n), k.source, k.state)
	}
}
