package testenv

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/prom-tenant/caddy-prom-tenant/internal/exampledata"
)

// VictoriaMetricsBinary is Debian's single-node VictoriaMetrics (package
// victoria-metrics, scripts/install-deps.sh).
const VictoriaMetricsBinary = "victoria-metrics"

// VictoriaMetrics is a running single-node VictoriaMetrics holding exampledata
// for [Start, End], sample for sample what a Prometheus backfilled over the
// same window with the same Keep holds. Query it at End (or within [Start, End]).
type VictoriaMetrics struct {
	URL     string // http://127.0.0.1:<port>
	Addr    string // 127.0.0.1:<port>, for reverse_proxy
	LogPath string
	Start   time.Time
	End     time.Time
	Series  int // number of series imported

	proc *process
}

// VictoriaMetricsOptions varies what StartVictoriaMetrics imports. The zero
// value imports all of exampledata over exampledata.Window(time.Now()).
type VictoriaMetricsOptions struct {
	// Start and End: give a Prometheus's Start and End to get its samples.
	Start, End time.Time
	// Keep selects series (labels including __name__); nil keeps all.
	Keep func(series map[string]string) bool
	// Flags are more command-line flags (a tight -search.maxSeries).
	Flags []string
}

// victoriaMetricsFlags are set so that imported history answers at once and
// the same on every run:
//   - -search.latencyOffset=0: by default query_range drops points less than
//     30s before now (they may still be arriving from scrapers), and End is
//     within a minute of now; nothing is scraped here.
//   - -search.disableCache: the rollup results cache would keep an answer
//     computed while the import was still being flushed (the readiness poll
//     asks before all is searchable).
//   - -dedup.minScrapeInterval is left off (0): every series has one sample
//     per 15s, so there is nothing to deduplicate, and deduplication would
//     only be a second, VictoriaMetrics-only transformation of the data.
//   - lookback (-search.maxStalenessInterval, -search.maxLookback) is left to
//     VictoriaMetrics' default, detected from the 15s sample interval: every
//     series has samples up to End, and the tests' queries look no further
//     back than their data, so a tenant-only VictoriaMetrics with the same
//     flags answers by the same rules, which is what the tests compare with.
//   - -selfScrapeInterval stays 0 (the default): no series of its own.
var victoriaMetricsFlags = []string{
	"-search.latencyOffset=0",
	"-search.disableCache",
	"-retentionPeriod=100y",
	"-loggerLevel=WARN",
}

// StartVictoriaMetrics starts a VictoriaMetrics, imports the example data into
// it, stopped when t ends, and waits until every imported series is searchable.
func StartVictoriaMetrics(t testing.TB, o VictoriaMetricsOptions) *VictoriaMetrics {
	t.Helper()
	RequireE2E(t)
	bin, err := exec.LookPath(VictoriaMetricsBinary)
	if err != nil {
		t.Fatalf("%s: %v (run scripts/install-deps.sh)", VictoriaMetricsBinary, err)
	}
	if o.Start.IsZero() && o.End.IsZero() {
		o.Start, o.End = exampledata.Window(time.Now())
	}
	dir := t.TempDir()
	port, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	vm := &VictoriaMetrics{
		Addr: "127.0.0.1:" + strconv.Itoa(port), LogPath: filepath.Join(dir, "victoria-metrics.log"),
		Start: o.Start, End: o.End,
	}
	vm.URL = "http://" + vm.Addr
	args := append([]string{
		"-storageDataPath=" + filepath.Join(dir, "data"),
		"-httpListenAddr=" + vm.Addr,
	}, victoriaMetricsFlags...)
	args = append(args, o.Flags...)
	vm.proc, err = startProcess("victoria-metrics", vm.LogPath, dir, nil, bin, args...)
	if err != nil {
		t.Fatal(err)
	}
	vm.proc.cleanup(t)
	ctx := t.Context()
	if err := vm.proc.waitUntil(60*time.Second, func() error {
		_, err := get(ctx, vm.URL+"/health")
		return err
	}); err != nil {
		t.Fatalf("%v; last lines of %s:\n%s", err, vm.LogPath, vm.proc.tail(40))
	}

	var data bytes.Buffer
	vm.Series, err = exampledata.WriteSelected(&data, o.Start, o.End, o.Keep)
	if err != nil {
		t.Fatal(err)
	}
	if vm.Series == 0 {
		return vm
	}
	if err := vm.importOpenMetrics(ctx, &data); err != nil {
		t.Fatal(err)
	}
	// Imported rows are searchable once flushed from the in-memory buffers
	// (about a second); force_flush does it now.
	q := url.Values{"query": {`count({__name__=~".+"})`}, "time": {strconv.FormatInt(o.End.Unix(), 10)}}
	if err := vm.proc.waitUntil(30*time.Second, func() error {
		if _, err := get(ctx, vm.URL+"/internal/force_flush"); err != nil {
			return err
		}
		n, err := countAt(ctx, vm.URL+"/api/v1/query?"+q.Encode())
		if err == nil && n != vm.Series {
			err = fmt.Errorf("%d series searchable at End, want %d", n, vm.Series)
		}
		return err
	}); err != nil {
		t.Fatalf("%v; last lines of %s:\n%s", err, vm.LogPath, vm.proc.tail(40))
	}
	return vm
}

// importOpenMetrics posts exampledata's OpenMetrics text to
// /api/v1/import/prometheus. That endpoint reads the Prometheus text format,
// whose timestamps are milliseconds where OpenMetrics' are seconds, so each
// sample line's timestamp is rewritten; comments (# HELP, # TYPE, # EOF) are
// skipped by the importer.
func (vm *VictoriaMetrics) importOpenMetrics(ctx context.Context, om io.Reader) error {
	var body bytes.Buffer
	sc := bufio.NewScanner(om)
	for sc.Scan() {
		line := sc.Bytes()
		if len(line) == 0 || line[0] == '#' {
			continue
		}
		i := bytes.LastIndexByte(line, ' ')
		sec, err := strconv.ParseInt(string(line[i+1:]), 10, 64)
		if i < 0 || err != nil {
			return fmt.Errorf("testenv: exampledata line without a timestamp: %q", line)
		}
		body.Write(line[:i+1])
		body.WriteString(strconv.FormatInt(sec*1000, 10))
		body.WriteByte('\n')
	}
	if err := sc.Err(); err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, vm.URL+"/api/v1/import/prometheus", &body)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("testenv: import into victoria-metrics: %s: %s", resp.Status, bytes.TrimSpace(b))
	}
	return nil
}
