package tenancy

import (
	"github.com/prometheus/client_golang/prometheus"
)

// tenancyCollector reports the running app's tenants at scrape time, so
// that no gauge is left behind by a config or a tenant that is gone. It is
// created once per process and registered into each config's registry.
type tenancyCollector struct {
	active, rejected, emptyFiles, emptyHolds *prometheus.Desc
}

var collector = &tenancyCollector{
	active: prometheus.NewDesc("prometheus_proxy_tenants_active",
		"Tenants with a valid policy in the registry: namespaces whose MetricAccess objects allow something.", nil, nil),
	rejected: prometheus.NewDesc("prometheus_proxy_metricaccess_rejected",
		"MetricAccess objects (source kubernetes) or manifest files (source directory) not in force, or whose current content is not: "+
			"invalid, duplicated, or in a namespace that allows nothing. GET /prom_tenant/tenants on the admin API says which and why.",
		[]string{"source"}, nil),
	emptyFiles: prometheus.NewDesc("prometheus_proxy_metricaccess_empty_files",
		"Manifest files (source directory) found empty whose previous objects stay in force for empty_file_grace.", nil, nil),
	emptyHolds: prometheus.NewDesc("prometheus_proxy_metricaccess_empty_file_holds_total",
		"Times a manifest file that held objects was found empty and its objects were kept for empty_file_grace: "+
			"something rewrites manifest files in place; write them atomically (a temporary file, then a rename).", nil, nil),
}

// Describe implements prometheus.Collector.
func (c *tenancyCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.active
	ch <- c.rejected
	ch <- c.emptyFiles
	ch <- c.emptyHolds
}

// Collect implements prometheus.Collector.
func (c *tenancyCollector) Collect(ch chan<- prometheus.Metric) {
	a := serving()
	if a == nil {
		return
	}
	if a.Directory != nil {
		ch <- prometheus.MustNewConstMetric(c.emptyFiles, prometheus.GaugeValue, float64(a.Directory.Held()))
		ch <- prometheus.MustNewConstMetric(c.emptyHolds, prometheus.CounterValue, float64(emptyFileHolds.Load()))
	}
	ch <- prometheus.MustNewConstMetric(c.active, prometheus.GaugeValue, float64(len(a.Registry().Tenants())))
	counts := map[string]int{}
	if a.Directory != nil {
		counts[sourceDirectory] = 0
	}
	if a.Kubernetes != nil {
		counts[sourceKubernetes] = 0
	}
	for _, r := range a.Rejections() {
		if r.Source == SourceKubernetes {
			counts[sourceKubernetes]++
		} else {
			counts[sourceDirectory]++
		}
	}
	for source, n := range counts {
		ch <- prometheus.MustNewConstMetric(c.rejected, prometheus.GaugeValue, float64(n), source)
	}
}
