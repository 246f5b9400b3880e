// Package exampledata generates a small, deterministic set of Prometheus series as
// OpenMetrics text, for backfilling with
//
//	promtool tsdb create-blocks-from openmetrics <file> <dir>
//
// The same window always yields byte-identical output, and every value is a function of
// the series and the absolute sample time only, so two Prometheus servers backfilled with
// overlapping windows (say, a full one and a tenant-only one) agree sample for sample.
//
// Counters grow by whole numbers per 15s step, so rate() and increase() give exact,
// predictable answers.
package exampledata

import (
	"bufio"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// Step is the spacing of samples.
const Step = 15 * time.Second

// Namespaces that hold application data. team-c has data but no MetricAccess in
// examples/tenants, so it must be treated as an unknown tenant.
var Namespaces = []string{"team-a", "team-b", "team-c", "monitoring"}

// Jobs run in every namespace in Namespaces, each with pods <job>-0 and <job>-1.
var Jobs = []string{"api", "web"}

// Down is the one target whose up is 0 (an instance of team-a's web job).
var Down = map[string]string{"namespace": "team-a", "job": "web", "instance": Instance("team-a", "web-1")}

// Instance is the instance label of a pod's target. It names the namespace so that the
// values differ between tenants: a leak shows up in label values, not only in counts.
func Instance(namespace, pod string) string { return pod + "." + namespace + ":8080" }

// Window returns the 1h window ending at now truncated to the minute.
func Window(now time.Time) (start, end time.Time) {
	end = now.Truncate(time.Minute)
	return end.Add(-time.Hour), end
}

// Write writes every series for the samples at start, start+Step, ... up to end.
func Write(w io.Writer, start, end time.Time) error {
	_, err := WriteSelected(w, start, end, nil)
	return err
}

// WriteSelected is Write restricted to the series for which keep returns true (all of
// them if keep is nil). keep sees each sample series' labels including __name__ (e.g.
// http_request_duration_seconds_bucket with its le). It reports how many series it wrote.
// It exists so that a test can backfill a Prometheus holding only what a tenant may see,
// and compare the proxy's answers with that Prometheus's answers.
func WriteSelected(w io.Writer, start, end time.Time, keep func(series map[string]string) bool) (int, error) {
	if end.Before(start) {
		return 0, fmt.Errorf("exampledata: end %v is before start %v", end, start)
	}
	bw := bufio.NewWriter(w)
	n := 0
	for _, f := range families() {
		n += f.write(bw, start, end, keep)
	}
	bw.WriteString("# EOF\n")
	return n, bw.Flush()
}

// A family is one OpenMetrics MetricFamily. OpenMetrics requires a family's lines to be
// contiguous, so each family is written in full before the next.
type family struct {
	name, typ, help string
	metrics         []metric
}

// A metric is one labelled member of a family. Its samples (one for a gauge or counter;
// buckets, count and sum for a histogram) are written together at each timestamp, as
// OpenMetrics groups a MetricPoint, and a metric's timestamps ascend.
type metric struct {
	labels  []label
	samples []sample
}

type sample struct {
	suffix string // appended to the family name: "_total", "_bucket", ...
	extra  []label
	value  func(step int64) float64 // step = unix seconds / 15
}

type label struct{ name, value string }

func (f family) write(w *bufio.Writer, start, end time.Time, keep func(map[string]string) bool) int {
	// Select first, so that a family with nothing kept leaves no HELP/TYPE lines.
	type selected struct {
		m       metric
		samples []sample
	}
	var sel []selected
	n := 0
	for _, m := range f.metrics {
		var ss []sample
		for _, s := range m.samples {
			if keep == nil || keep(seriesLabels(f.name+s.suffix, m.labels, s.extra)) {
				ss = append(ss, s)
			}
		}
		if len(ss) > 0 {
			sel = append(sel, selected{m, ss})
			n += len(ss)
		}
	}
	if n == 0 {
		return 0
	}
	fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s %s\n", f.name, f.help, f.name, f.typ)
	// Align to the absolute 15s grid, so overlapping windows share their timestamps.
	step := int64(Step / time.Second)
	first := (start.Unix() + step - 1) / step * step
	for _, s := range sel {
		for ts := first; ts <= end.Unix(); ts += step {
			for _, smp := range s.samples {
				w.WriteString(f.name + smp.suffix)
				writeLabels(w, s.m.labels, smp.extra)
				w.WriteByte(' ')
				w.WriteString(strconv.FormatFloat(smp.value(ts/step), 'f', -1, 64))
				w.WriteByte(' ')
				w.WriteString(strconv.FormatInt(ts, 10))
				w.WriteByte('\n')
			}
		}
	}
	return n
}

func seriesLabels(name string, ls, extra []label) map[string]string {
	m := map[string]string{"__name__": name}
	for _, l := range append(ls[:len(ls):len(ls)], extra...) {
		m[l.name] = l.value
	}
	return m
}

func writeLabels(w *bufio.Writer, ls, extra []label) {
	if len(ls)+len(extra) == 0 {
		return
	}
	w.WriteByte('{')
	for i, l := range append(ls[:len(ls):len(ls)], extra...) {
		if i > 0 {
			w.WriteByte(',')
		}
		w.WriteString(l.name)
		w.WriteString(`="`)
		w.WriteString(escaper.Replace(l.value))
		w.WriteByte('"')
	}
	w.WriteByte('}')
}

var escaper = strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)

func constant(v float64) func(int64) float64 { return func(int64) float64 { return v } }

// counter grows by perStep every step: an exact rate of perStep/15 per second.
func counter(perStep float64) func(int64) float64 {
	return func(step int64) float64 { return perStep * float64(step) }
}

func families() []family {
	httpReqs := family{name: "http_requests", typ: "counter", help: "Total HTTP requests served."}
	duration := family{name: "http_request_duration_seconds", typ: "histogram", help: "HTTP request latency."}
	up := family{name: "up", typ: "gauge", help: "Whether the target was reachable."}
	rss := family{name: "process_resident_memory_bytes", typ: "gauge", help: "Resident memory size in bytes."}
	podInfo := family{name: "kube_pod_info", typ: "gauge", help: "Information about a pod."}

	i := 0 // series index: varies the values between series
	for _, ns := range Namespaces {
		for _, job := range Jobs {
			i++
			k := float64(i)
			// Per step: 40% of requests under 0.1s, 70% under 0.5s, 90% under 1s.
			duration.metrics = append(duration.metrics, metric{
				labels: []label{{"namespace", ns}, {"job", job}},
				samples: []sample{
					{"_bucket", []label{{"le", "0.1"}}, counter(4 * k)},
					{"_bucket", []label{{"le", "0.5"}}, counter(7 * k)},
					{"_bucket", []label{{"le", "1"}}, counter(9 * k)},
					{"_bucket", []label{{"le", "+Inf"}}, counter(10 * k)},
					{"_count", nil, counter(10 * k)},
					{"_sum", nil, counter(2.5 * k)},
				},
			})
			for p := range 2 {
				pod := job + "-" + strconv.Itoa(p)
				inst := Instance(ns, pod)
				j := float64(2*i + p)
				for _, code := range []string{"200", "500"} {
					perStep := 10 + j // successes
					if code == "500" {
						perStep = float64(1 + p)
					}
					httpReqs.metrics = append(httpReqs.metrics, metric{
						labels:  []label{{"namespace", ns}, {"job", job}, {"pod", pod}, {"code", code}, {"method", "get"}},
						samples: []sample{{"_total", nil, counter(perStep)}},
					})
				}
				v := 1.0
				if ns == Down["namespace"] && job == Down["job"] && inst == Down["instance"] {
					v = 0
				}
				up.metrics = append(up.metrics, metric{
					labels:  []label{{"namespace", ns}, {"job", job}, {"instance", inst}},
					samples: []sample{{"", nil, constant(v)}},
				})
				base := 64<<20 + j*(8<<20)
				rss.metrics = append(rss.metrics, metric{
					labels: []label{{"namespace", ns}, {"job", job}, {"instance", inst}},
					samples: []sample{{"", nil, func(step int64) float64 {
						return base + float64(step%8)*(256<<10) // a small sawtooth
					}}},
				})
				podInfo.metrics = append(podInfo.metrics, metric{
					labels:  []label{{"namespace", ns}, {"pod", pod}},
					samples: []sample{{"", nil, constant(1)}},
				})
			}
		}
	}

	secret := family{name: "db_password_len", typ: "gauge", help: "Length of the database password: a secret no tenant policy allows.",
		metrics: []metric{{
			labels:  []label{{"namespace", "team-b"}, {"job", "db"}},
			samples: []sample{{"", nil, constant(42)}},
		}}}
	// Infrastructure: no namespace label at all.
	nodeCPU := family{name: "node_cpu_seconds", typ: "counter", help: "Seconds the CPU spent in each mode."}
	for m, mode := range []string{"idle", "user"} {
		nodeCPU.metrics = append(nodeCPU.metrics, metric{
			labels:  []label{{"instance", "node-1"}, {"cpu", "0"}, {"mode", mode}},
			samples: []sample{{"_total", nil, counter([]float64{12, 3}[m])}}, // 12s+3s per 15s step
		})
	}
	return []family{httpReqs, duration, up, rss, secret, nodeCPU, podInfo}
}
