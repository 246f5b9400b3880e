package testenv

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/prom-tenant/caddy-prom-tenant/internal/exampledata"
)

// Prometheus is a running Prometheus backfilled with exampledata for [Start, End].
// Query it at End (or within [Start, End]): "now" drifts away from the data as tests run.
type Prometheus struct {
	URL     string // http://127.0.0.1:<port>
	Addr    string // 127.0.0.1:<port>, for reverse_proxy
	DataDir string
	LogPath string
	Start   time.Time
	End     time.Time
	Series  int // number of series backfilled

	dir       string
	args      []string
	binary    string
	readyAuth *url.Userinfo
	proc      *process
}

// PrometheusOptions varies what StartPrometheusWith backfills. The zero value is what
// StartPrometheus uses.
type PrometheusOptions struct {
	// Start and End default to exampledata.Window(time.Now()). Give another
	// Prometheus's Start and End to get the same samples.
	Start, End time.Time
	// Keep selects series (labels including __name__); nil keeps all. A Prometheus
	// that holds only a tenant's allowed series is the reference a proxy must match.
	Keep func(series map[string]string) bool
	// Args are extra command-line flags for prometheus.
	Args []string
	// Config is the prometheus.yml to run. Default: no scrape jobs, so the
	// backfilled data is all there is and answers are predictable.
	Config string
	// ReadyAuth is the user and password of a Prometheus whose Args give it
	// a --web.config.file with basic_auth_users, for the readiness check.
	ReadyAuth *url.Userinfo
	// Binary is the prometheus server to run. Default: prometheus from PATH
	// (Debian's 2.42). Prometheus3Binary gives a 3.x build.
	Binary string
}

// EnvPrometheus3 is the path of a Prometheus 3.x server (make test sets it to
// what scripts/build-prometheus3.sh built), for remote-write 2.0.
const EnvPrometheus3 = "PROM_TENANT_PROMETHEUS3"

// Prometheus3Binary returns $PROM_TENANT_PROMETHEUS3, failing t (or skipping
// it outside end-to-end runs) when it is not set.
func Prometheus3Binary(t testing.TB) string {
	t.Helper()
	RequireE2E(t)
	bin := os.Getenv(EnvPrometheus3)
	if bin == "" {
		t.Fatalf("%s is not set: run scripts/build-prometheus3.sh and set it to the path it prints (make test does)", EnvPrometheus3)
	}
	return bin
}

// StartPrometheus starts a Prometheus with all example data, stopped when t ends.
func StartPrometheus(t testing.TB) *Prometheus {
	t.Helper()
	return StartPrometheusWith(t, PrometheusOptions{})
}

// StartPrometheusWith is StartPrometheus with options.
func StartPrometheusWith(t testing.TB, o PrometheusOptions) *Prometheus {
	t.Helper()
	RequireE2E(t)
	p, err := startPrometheus(t.Context(), t.TempDir(), o)
	if err != nil {
		t.Fatal(err)
	}
	cleanupCurrent(t, func() *process { return p.proc })
	return p
}

var shared struct {
	once sync.Once
	prom *Prometheus
	dir  string
	err  error
}

// SharedPrometheus returns one Prometheus (all example data) for the whole test binary,
// started by the first caller. Tests must not change its data. Stop it at the end with
// testenv.Run in TestMain; without that, it is killed when the test binary exits (Linux)
// and its temporary directory is left behind. A failing test gets its log tail.
func SharedPrometheus(t testing.TB) *Prometheus {
	t.Helper()
	RequireE2E(t)
	shared.once.Do(func() {
		shared.dir, shared.err = os.MkdirTemp("", "testenv-prometheus-")
		if shared.err == nil {
			// Not t.Context(): the process outlives this test.
			shared.prom, shared.err = startPrometheus(context.Background(), shared.dir, PrometheusOptions{})
		}
	})
	if shared.err != nil {
		t.Fatal(shared.err)
	}
	p := shared.prom
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("last lines of the shared prometheus log %s:\n%s", p.LogPath, p.proc.tail(60))
		}
	})
	return p
}

// Run runs the tests, then stops what SharedPrometheus and SharedKubeAPIServer started.
// Use it as
//
//	func TestMain(m *testing.M) { os.Exit(testenv.Run(m)) }
func Run(m *testing.M) int {
	code := m.Run()
	stopSharedKube()
	if shared.prom != nil {
		shared.prom.proc.stop()
	}
	if shared.dir != "" {
		os.RemoveAll(shared.dir)
	}
	return code
}

func startPrometheus(ctx context.Context, dir string, o PrometheusOptions) (*Prometheus, error) {
	if o.Start.IsZero() && o.End.IsZero() {
		o.Start, o.End = exampledata.Window(time.Now())
	}
	p := &Prometheus{
		DataDir: filepath.Join(dir, "data"),
		LogPath: filepath.Join(dir, "prometheus.log"),
		Start:   o.Start,
		End:     o.End,
	}
	if err := backfill(ctx, dir, p, o.Keep); err != nil {
		return nil, err
	}

	cfg := filepath.Join(dir, "prometheus.yml")
	if o.Config == "" {
		o.Config = "global:\n  scrape_interval: 15s\n"
	}
	if err := os.WriteFile(cfg, []byte(o.Config), 0o644); err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	p.Addr = "127.0.0.1:" + strconv.Itoa(port)
	p.URL = "http://" + p.Addr
	args := append([]string{
		"--config.file=" + cfg,
		"--storage.tsdb.path=" + p.DataDir,
		"--web.listen-address=" + p.Addr,
		"--web.enable-remote-write-receiver", // for tests that write series back
	}, o.Args...)
	if o.Binary == "" {
		o.Binary = "prometheus"
	}
	p.dir, p.args, p.binary, p.readyAuth = dir, args, o.Binary, o.ReadyAuth
	p.proc, err = startProcess("prometheus", p.LogPath, dir, nil, o.Binary, args...)
	if err != nil {
		return nil, err
	}

	// Blocks are loaded before /-/ready answers 200; the query check makes sure the
	// backfilled data really is there (an empty result would make tests vacuous).
	err = p.proc.waitUntil(60*time.Second, func() error {
		if _, err := get(ctx, p.readyURL()); err != nil {
			return err
		}
		if p.Series == 0 {
			return nil
		}
		n, err := p.count(ctx, `count({__name__=~".+"})`)
		if err == nil && n != p.Series {
			err = fmt.Errorf("%d series queryable at End, want %d", n, p.Series)
		}
		return err
	})
	if err != nil {
		p.proc.stop()
		return nil, fmt.Errorf("%w; last lines of %s:\n%s", err, p.LogPath, p.proc.tail(40))
	}
	return p, nil
}

// backfill writes the example data to a file and turns it into TSDB blocks.
func backfill(ctx context.Context, dir string, p *Prometheus, keep func(map[string]string) bool) error {
	om := filepath.Join(dir, "data.om")
	f, err := os.Create(om)
	if err != nil {
		return err
	}
	p.Series, err = exampledata.WriteSelected(f, p.Start, p.End, keep)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil || p.Series == 0 {
		return err
	}
	out, err := exec.CommandContext(ctx, "promtool", "tsdb", "create-blocks-from", "openmetrics", om, p.DataDir).CombinedOutput()
	if err != nil {
		return fmt.Errorf("testenv: promtool tsdb create-blocks-from openmetrics: %v\n%s", err, out)
	}
	return nil
}

// count evaluates an instant query at End whose answer is one number.
func (p *Prometheus) count(ctx context.Context, query string) (int, error) {
	return countAt(ctx, p.URL+"/api/v1/query?"+url.Values{
		"query": {query},
		"time":  {strconv.FormatInt(p.End.Unix(), 10)},
	}.Encode())
}

// countAt fetches an instant query's URL whose answer is one number.
func countAt(ctx context.Context, queryURL string) (int, error) {
	body, err := get(ctx, queryURL)
	if err != nil {
		return 0, err
	}
	var r struct {
		Data struct {
			Result []struct {
				Value [2]any `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &r); err != nil {
		return 0, err
	}
	if len(r.Data.Result) != 1 {
		return 0, errors.New("no data yet: " + string(body))
	}
	s, _ := r.Data.Result[0].Value[1].(string)
	return strconv.Atoi(s)
}

// Stop stops Prometheus now (SIGTERM, so the TSDB is closed cleanly); Restart
// starts it again.
func (p *Prometheus) Stop() { p.proc.stop() }

// Restart starts a stopped Prometheus again on the same address and data,
// waits until it is ready. It is stopped when the test that started it ends.
// The log is appended to.
func (p *Prometheus) Restart(t testing.TB) {
	t.Helper()
	p.proc.stop()
	proc, err := startProcessAppend("prometheus", p.LogPath, p.dir, nil, p.binary, p.args...)
	if err != nil {
		t.Fatal(err)
	}
	p.proc = proc // stopped by the cleanup of the test that started p
	if err := proc.waitUntil(60*time.Second, func() error {
		_, err := get(t.Context(), p.readyURL())
		return err
	}); err != nil {
		t.Fatalf("%v; last lines of %s:\n%s", err, p.LogPath, proc.tail(40))
	}
}

func (p *Prometheus) readyURL() string {
	u := &url.URL{Scheme: "http", Host: p.Addr, Path: "/-/ready", User: p.readyAuth}
	return u.String()
}
