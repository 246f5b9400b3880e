package rewrite

import (
	"context"
	"fmt"
	"testing"

	"github.com/prometheus/prometheus/promql/parser"
)

// benchQueries are representative: a trivial one, typical dashboard panels,
// and a large one.
var benchQueries = map[string]string{
	"up":        `up`,
	"dashboard": `sum by (job, code) (rate(http_requests_total{job=~"api|web",code=~"5.."}[5m])) / ignoring(code) group_left sum by (job) (rate(http_requests_total[5m]))`,
	"quantile":  `histogram_quantile(0.99, sum by (le, job) (rate(http_request_duration_seconds_bucket{job="api"}[5m])))`,
	"large": `(sum by (namespace, job) (rate(http_requests_total{code=~"5.."}[5m])) / sum by (namespace, job) (rate(http_requests_total[5m]))) > 0.05 ` +
		`and on (namespace, job) (sum by (namespace, job) (up) > 0) or max_over_time(absent(up{job="api"})[10m:1m]) ` +
		`+ on() group_left() count(process_resident_memory_bytes > 1e9) * topk(5, rate(node_cpu_seconds_total{mode!="idle"}[1m]))`,
}

// fiftyPatterns is a policy of 50 metric-name patterns with namespace
// isolation, as a large MetricAccess would compile to.
func fiftyPatterns(b *testing.B) *Policy {
	var sels []string
	for i := range 48 {
		sels = append(sels, fmt.Sprintf(`{__name__="app_metric_%d_total",namespace="t"}`, i))
	}
	sels = append(sels, `{__name__=~"http_.*",namespace="t"}`, `{__name__="up",namespace="t"}`)
	return newTestPolicy(b, sels...)
}

func BenchmarkEnforceQuery(b *testing.B) {
	e := NewEnforcer(parser.Options{})
	policies := map[string]*Policy{
		"single": newTestPolicy(b, `{namespace="t"}`),
		"fifty":  fiftyPatterns(b),
	}
	for _, pname := range []string{"single", "fifty"} {
		for _, qname := range []string{"up", "dashboard", "quantile", "large"} {
			b.Run(pname+"/"+qname, func(b *testing.B) {
				p, q := policies[pname], benchQueries[qname]
				b.ReportAllocs()
				for b.Loop() {
					if _, err := e.EnforceQuery(context.Background(), p, q); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

func BenchmarkEnforceMatchers(b *testing.B) {
	e := NewEnforcer(parser.Options{})
	p := fiftyPatterns(b)
	match := []string{`{__name__=~".+"}`}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := e.EnforceMatchers(context.Background(), p, match); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkEnforceQueryCached is BenchmarkEnforceQuery's single-policy
// queries answered from the rewrite cache, as a dashboard's repeated
// queries are.
func BenchmarkEnforceQueryCached(b *testing.B) {
	e := NewEnforcer(parser.Options{}).WithCache(16 << 20)
	p := newTestPolicy(b, `{namespace="t"}`)
	for _, qname := range []string{"up", "dashboard", "quantile", "large"} {
		b.Run(qname, func(b *testing.B) {
			q := benchQueries[qname]
			b.ReportAllocs()
			for b.Loop() {
				if _, err := e.EnforceQuery(context.Background(), p, q); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
