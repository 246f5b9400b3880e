// Command exampledata writes the deterministic example series of internal/exampledata
// to stdout as OpenMetrics text, ready for
//
//	promtool tsdb create-blocks-from openmetrics <file> <data dir>
package main

import (
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/prom-tenant/caddy-prom-tenant/internal/exampledata"
)

func main() {
	defStart, defEnd := exampledata.Window(time.Now())
	start := flag.String("start", "", "first sample time, RFC3339 (default: 1h before -end)")
	end := flag.String("end", "", "last sample time, RFC3339 (default: now, truncated to the minute)")
	flag.Parse()

	e, err := parse(*end, defEnd)
	if err != nil {
		fail(err)
	}
	s, err := parse(*start, e.Add(defStart.Sub(defEnd)))
	if err != nil {
		fail(err)
	}
	if err := exampledata.Write(os.Stdout, s, e); err != nil {
		fail(err)
	}
}

func parse(v string, def time.Time) (time.Time, error) {
	if v == "" {
		return def, nil
	}
	return time.Parse(time.RFC3339, v)
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "exampledata:", err)
	os.Exit(1)
}
