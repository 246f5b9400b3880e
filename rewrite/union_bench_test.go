package rewrite

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/promql/promqltest"
	"github.com/prometheus/prometheus/storage"
)

// unionPolicies are policies of 2, 5 and 20 branches that do not merge:
// each branch is a team's namespace ANDed with a different label, so every
// benchmark query overlaps several and is answered with a written union.
func unionPolicies(b *testing.B) map[string]*Policy {
	branch := func(i int) string {
		switch i % 4 {
		case 0:
			return fmt.Sprintf(`{namespace="team-%d"}`, i)
		case 1:
			return fmt.Sprintf(`{job="api",env="e%d"}`, i)
		case 2:
			return fmt.Sprintf(`{__name__=~"http_.*",pod="p%d"}`, i)
		default:
			return fmt.Sprintf(`{__name__="up",instance="i%d"}`, i)
		}
	}
	out := map[string]*Policy{}
	for _, n := range []int{2, 5, 20} {
		var sels []string
		for i := range n {
			sels = append(sels, branch(i))
		}
		out[fmt.Sprint(n)] = newTestPolicy(b, sels...)
	}
	return out
}

// BenchmarkEnforceUnion is BenchmarkEnforceQuery under union policies: the
// rewriter's cost of writing the unions.
func BenchmarkEnforceUnion(b *testing.B) {
	e := NewEnforcer(parser.Options{})
	policies := unionPolicies(b)
	for _, pname := range []string{"2", "5", "20"} {
		for _, qname := range []string{"up", "dashboard", "quantile", "large"} {
			b.Run(pname+"/"+qname, func(b *testing.B) {
				p, q := policies[pname], benchQueries[qname]
				out, err := e.EnforceQuery(context.Background(), p, q)
				if err != nil {
					b.Fatal(err)
				}
				b.ReportMetric(float64(strings.Count(out, UnionPartLabel)/4), "parts")
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

// unionBenchData is 2,400 series over 20 namespaces, both jobs, 3 pods and
// 20 instances, for the engine benchmark.
func unionBenchData() string {
	var b strings.Builder
	b.WriteString("load 1m\n")
	for ns := range 20 {
		for _, job := range []string{"api", "web"} {
			for pod := range 3 {
				for code, rate := range map[string]int{"200": 10, "500": 1} {
					fmt.Fprintf(&b, "\thttp_requests_total{namespace=\"team-%d\",job=%q,pod=\"p%d\",env=\"e%d\",code=%q} 0+%dx60\n", ns, job, pod, ns%6, code, rate*(pod+1))
				}
				for _, le := range []string{"0.1", "0.5", "+Inf"} {
					fmt.Fprintf(&b, "\thttp_request_duration_seconds_bucket{namespace=\"team-%d\",job=%q,pod=\"p%d\",le=%q} 0+%dx60\n", ns, job, pod, le, pod+1)
				}
				fmt.Fprintf(&b, "\tup{namespace=\"team-%d\",job=%q,instance=\"i%d\"} 1x60\n", ns, job, ns)
				fmt.Fprintf(&b, "\tprocess_resident_memory_bytes{namespace=\"team-%d\",job=%q,pod=\"p%d\"} 1e9+1e6x60\n", ns, job, pod)
				fmt.Fprintf(&b, "\tnode_cpu_seconds_total{instance=\"i%d\",mode=\"user\",pod=\"p%d\"} 0+5x60\n", ns, pod)
			}
		}
	}
	return b.String()
}

// BenchmarkUpstreamUnion measures what exactness costs the upstream: the
// Prometheus engine evaluating the rewritten query (unions written in) over
// all series, against the user's query over a storage that holds only the
// tenant's series (what a tenant-only Prometheus would do), as range queries
// over an hour at a 1m step.
func BenchmarkUpstreamUnion(b *testing.B) {
	engine := promqltest.NewTestEngineWithOpts(b, promql.EngineOpts{MaxSamples: 1e8, Timeout: time.Minute, LookbackDelta: 5 * time.Minute})
	all := promqltest.LoadedStorage(b, unionBenchData())
	e := NewEnforcer(parser.Options{})
	policies := unionPolicies(b)
	start, end := time.Unix(0, 0), time.Unix(0, 0).Add(time.Hour)
	run := func(b *testing.B, q storage.Queryable, query string) {
		for b.Loop() {
			rq, err := engine.NewRangeQuery(context.Background(), q, nil, query, start, end, time.Minute)
			if err != nil {
				b.Fatal(err)
			}
			if res := rq.Exec(context.Background()); res.Err != nil {
				b.Fatal(res.Err)
			}
			rq.Close()
		}
	}
	for _, pname := range []string{"2", "5", "20"} {
		for _, qname := range []string{"dashboard", "quantile"} {
			p, q := policies[pname], benchQueries[qname]
			rewritten, err := e.EnforceQuery(context.Background(), p, q)
			if err != nil {
				b.Fatal(err)
			}
			b.Run(pname+"/"+qname+"/tenant-only", func(b *testing.B) { run(b, filtered{all, p}, q) })
			b.Run(pname+"/"+qname+"/union", func(b *testing.B) { run(b, all, rewritten) })
		}
	}
}
