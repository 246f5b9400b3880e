// Command httpbenchdata writes the series of the HTTP benchmark
// (scripts/bench.sh) to stdout as OpenMetrics text, ready for
//
//	promtool tsdb create-blocks-from openmetrics <file> <data dir>
//
// It writes -namespaces namespaces ("tenant-00", "tenant-01", ...) of 1,000
// series each, so that one tenant sees 1/20 of 20,000 series by default, one
// sample every -step from -start to -end. Each namespace runs 20 pods, 10 of
// job "api" and 10 of job "web"; each pod has `up`, `http_requests_total`
// for 4 status codes, and 45 gauges `app_metric_NN`. Output is deterministic.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"os"
	"strconv"
	"time"
)

const (
	podsPerJob = 10
	gauges     = 45
)

var (
	jobs  = []string{"api", "web"}
	codes = []string{"200", "404", "500", "503"}
)

func main() {
	namespaces := flag.Int("namespaces", 20, "namespaces of 1,000 series each")
	start := flag.String("start", "", "first sample time, RFC3339 (required)")
	end := flag.String("end", "", "last sample time, RFC3339 (required)")
	step := flag.Duration("step", 30*time.Second, "spacing of samples")
	flag.Parse()
	s, err1 := time.Parse(time.RFC3339, *start)
	e, err2 := time.Parse(time.RFC3339, *end)
	switch {
	case err1 != nil || err2 != nil:
		fail(fmt.Errorf("-start and -end must be RFC3339 times: %v %v", err1, err2))
	case e.Before(s):
		fail(fmt.Errorf("-end %s is before -start %s", *end, *start))
	case *step < time.Second || *step%time.Second != 0:
		fail(fmt.Errorf("-step must be whole seconds, got %s", *step))
	case *namespaces < 1:
		fail(fmt.Errorf("-namespaces must be at least 1, got %d", *namespaces))
	}
	w := bufio.NewWriterSize(os.Stdout, 1<<20)
	g := gen{w: w, first: s.Unix(), last: e.Unix(), step: int64(*step / time.Second), namespaces: *namespaces}
	g.family("up", "gauge", "Whether the target was scraped.", nil, func(id, n int64) float64 { return 1 })
	g.family("http_requests", "counter", "Requests served.", codes, func(id, n int64) float64 { return float64(n * (1 + id%7)) })
	for i := range gauges {
		g.family(fmt.Sprintf("app_metric_%02d", i), "gauge", "An application gauge.", nil,
			func(id, n int64) float64 { return float64((id*31+n*17)%1000) / 8 })
	}
	w.WriteString("# EOF\n")
	if err := w.Flush(); err != nil {
		fail(err)
	}
}

type gen struct {
	w                 *bufio.Writer
	first, last, step int64
	namespaces        int
	id                int64 // distinct per series
	buf               []byte
}

// family writes one metric family for every pod of every namespace, one
// series per code (or one without a code label), each in time order.
func (g *gen) family(family, typ, help string, codes []string, value func(id, n int64) float64) {
	fmt.Fprintf(g.w, "# HELP %s %s\n# TYPE %s %s\n", family, help, family, typ)
	name := family
	if typ == "counter" {
		name += "_total" // OpenMetrics: a counter's sample is <family>_total
	}
	if codes == nil {
		codes = []string{""}
	}
	for ns := range g.namespaces {
		for _, job := range jobs {
			for pod := range podsPerJob {
				for _, code := range codes {
					g.id++
					prefix := fmt.Sprintf(`%s{namespace="tenant-%02d",job="%s",pod="%s-%d",instance="10.0.%d.%d:8080"`,
						name, ns, job, job, pod, ns, len(jobs)*pod+len(job))
					if code != "" {
						prefix += `,code="` + code + `"`
					}
					prefix += "} "
					for ts := g.first; ts <= g.last; ts += g.step {
						g.buf = append(g.buf[:0], prefix...)
						g.buf = strconv.AppendFloat(g.buf, value(g.id, ts/g.step), 'f', -1, 64)
						g.buf = append(g.buf, ' ')
						g.buf = strconv.AppendInt(g.buf, ts, 10)
						g.buf = append(g.buf, '\n')
						g.w.Write(g.buf)
					}
				}
			}
		}
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "httpbenchdata:", err)
	os.Exit(2)
}
