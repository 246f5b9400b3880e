// Command benchdata writes the series of the remote-write benchmark
// (scripts/bench-remotewrite.sh) to stdout as OpenMetrics text, ready for
//
//	promtool tsdb create-blocks-from openmetrics <file> <data dir>
//
// It writes -series series in namespace "bench" and -others in namespace
// "other" (which the benchmark's tenant must not copy), one sample every
// -step from -start to -end. The series look like a node exporter's: 20
// metric families (half counters, half gauges) over instances of 5 series
// each, about 100 bytes of labels per series. Output is deterministic.
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
	families          = 20
	seriesPerInstance = 5
)

func main() {
	series := flag.Int("series", 100_000, "series in namespace bench (a multiple of 100)")
	others := flag.Int("others", 1_000, "series in namespace other (a multiple of 100)")
	start := flag.String("start", "", "first sample time, RFC3339 (required)")
	end := flag.String("end", "", "last sample time, RFC3339 (required)")
	step := flag.Duration("step", 15*time.Second, "spacing of samples")
	flag.Parse()
	s, err1 := time.Parse(time.RFC3339, *start)
	e, err2 := time.Parse(time.RFC3339, *end)
	unit := families * seriesPerInstance
	switch {
	case err1 != nil || err2 != nil:
		fail(fmt.Errorf("-start and -end must be RFC3339 times: %v %v", err1, err2))
	case e.Before(s):
		fail(fmt.Errorf("-end %s is before -start %s", *end, *start))
	case *step < time.Second || *step%time.Second != 0:
		fail(fmt.Errorf("-step must be whole seconds, got %s", *step))
	case *series < 0 || *series%unit != 0 || *others < 0 || *others%unit != 0:
		fail(fmt.Errorf("-series and -others must be multiples of %d", unit))
	}
	w := bufio.NewWriterSize(os.Stdout, 1<<20)
	write(w, s.Unix(), e.Unix(), int64(*step/time.Second), map[string]int{"bench": *series, "other": *others})
	w.WriteString("# EOF\n")
	if err := w.Flush(); err != nil {
		fail(err)
	}
}

// write writes family by family (OpenMetrics keeps a family's lines
// together), each series' samples in time order.
func write(w *bufio.Writer, first, last, step int64, perNamespace map[string]int) {
	var buf []byte
	for f := range families {
		family, typ := fmt.Sprintf("bench_metric_%02d", f), "gauge"
		if f%2 == 0 {
			typ = "counter"
		}
		fmt.Fprintf(w, "# HELP %s Benchmark series %d.\n# TYPE %s %s\n", family, f, family, typ)
		name := family
		if typ == "counter" {
			name += "_total" // OpenMetrics: a counter's sample is <family>_total
		}
		for _, ns := range []string{"bench", "other"} {
			instances := perNamespace[ns] / (families * seriesPerInstance)
			for inst := range instances {
				for k := range seriesPerInstance {
					id := (f*instances+inst)*seriesPerInstance + k // distinct per series
					prefix := fmt.Sprintf(`%s{namespace="%s",job="node-exporter",instance="10.%d.%d.%d:9100",cpu="%d",mode="user"} `,
						name, ns, inst/65536, inst/256%256, inst%256, k)
					for ts := first; ts <= last; ts += step {
						n := ts / step
						var v float64
						if typ == "counter" {
							v = float64(n * int64(1+id%7)) // grows by whole numbers
						} else {
							v = float64((int64(id)*31+n*17)%1000) / 8
						}
						buf = append(buf[:0], prefix...)
						buf = strconv.AppendFloat(buf, v, 'f', -1, 64)
						buf = append(buf, ' ')
						buf = strconv.AppendInt(buf, ts, 10)
						buf = append(buf, '\n')
						w.Write(buf)
					}
				}
			}
		}
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "benchdata:", err)
	os.Exit(2)
}
