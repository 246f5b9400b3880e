package testenv

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/prom-tenant/caddy-prom-tenant/internal/exampledata"
)

// EnvThanos is the path of a Thanos binary (make test sets it to what
// scripts/build-thanos.sh built).
const EnvThanos = "PROM_TENANT_THANOS"

// ThanosBinary returns $PROM_TENANT_THANOS, failing t (or skipping it outside
// end-to-end runs) when it is not set.
func ThanosBinary(t testing.TB) string {
	t.Helper()
	RequireE2E(t)
	bin := os.Getenv(EnvThanos)
	if bin == "" {
		t.Fatalf("%s is not set: run scripts/build-thanos.sh and set it to the path it prints (make test does)", EnvThanos)
	}
	return bin
}

// ThanosReplicaLabel is the external label that tells the HA pair's replicas
// apart; Thanos Query deduplicates by it, so no answer carries it.
const ThanosReplicaLabel = "replica"

// Thanos is a running scale-out topology over exampledata: an HA pair of
// Prometheus servers with the same data (external labels replica="a" and
// replica="b"), a shard holding the rest, a Thanos sidecar per Prometheus,
// Thanos Query over the sidecars deduplicating by replica, and Thanos Query
// Frontend with its in-memory results cache in front of Query. Query it at End
// (or within [Start, End]), like a Prometheus.
type Thanos struct {
	Pair     [2]*Prometheus
	Shard    *Prometheus
	Sidecars []*ThanosComponent // one per Prometheus: Pair[0], Pair[1], Shard
	Query    *ThanosComponent
	Frontend *ThanosComponent // what a proxy sits in front of
	Start    time.Time
	End      time.Time
	Series   int // series Query answers after deduplication
}

// ThanosComponent is one running thanos process.
type ThanosComponent struct {
	URL      string // http://127.0.0.1:<port>
	Addr     string // 127.0.0.1:<port>, for reverse_proxy
	GRPCAddr string // the StoreAPI, for sidecars and Query
	LogPath  string

	proc *process
}

// ThanosOptions varies StartThanos. The zero value puts the namespaces
// team-a, team-b and the series without a namespace on the HA pair and
// the other namespaces on the shard.
type ThanosOptions struct {
	// Start and End default to exampledata.Window of ten minutes ago: the
	// frontend does not cache the last minute before now (its
	// max-freshness), and the cache tests need every step cacheable.
	Start, End time.Time
	// OnPair selects the series the HA pair holds; the shard holds the others.
	OnPair func(series map[string]string) bool
	// PrometheusBinary runs the three Prometheus servers. Default: prometheus
	// from PATH.
	PrometheusBinary string
	// Binary is thanos. Default: ThanosBinary(t).
	Binary string
	// PrometheusArgs are extra flags for the three Prometheus servers.
	PrometheusArgs []string
	// PairScrapeConfigs is a scrape_configs: block for the HA pair's
	// prometheus.yml (both replicas scrape the same targets); the shard
	// scrapes nothing. Default: none, the backfilled data is all there is.
	PairScrapeConfigs string
}

func defaultOnPair(series map[string]string) bool {
	ns, ok := series["namespace"]
	return !ok || ns == "team-a" || ns == "team-b"
}

// StartThanos starts the topology, stopped when t ends, and waits until Query
// and Frontend answer with every series once.
func StartThanos(t testing.TB, o ThanosOptions) *Thanos {
	t.Helper()
	RequireE2E(t)
	if o.Binary == "" {
		o.Binary = ThanosBinary(t)
	}
	if o.Start.IsZero() && o.End.IsZero() {
		o.Start, o.End = exampledata.Window(time.Now().Add(-10 * time.Minute))
	}
	if o.OnPair == nil {
		o.OnPair = defaultOnPair
	}
	th := &Thanos{Start: o.Start, End: o.End}

	// Sidecars refuse a Prometheus without external labels: they are what
	// tells StoreAPI sources apart. Only the replica label is set, so that
	// deduplicated answers carry exactly the backfilled labels.
	prom := func(replica string, keep func(map[string]string) bool, scrape string) *Prometheus {
		return StartPrometheusWith(t, PrometheusOptions{
			Start: o.Start, End: o.End, Keep: keep, Binary: o.PrometheusBinary, Args: o.PrometheusArgs,
			Config: fmt.Sprintf("global:\n  scrape_interval: 15s\n  external_labels:\n    %s: %q\n", ThanosReplicaLabel, replica) + scrape,
		})
	}
	th.Pair[0] = prom("a", o.OnPair, o.PairScrapeConfigs)
	th.Pair[1] = prom("b", o.OnPair, o.PairScrapeConfigs)
	th.Shard = prom("shard-0", func(s map[string]string) bool { return !o.OnPair(s) }, "")
	th.Series = th.Pair[0].Series + th.Shard.Series

	var endpoints []string
	for i, p := range []*Prometheus{th.Pair[0], th.Pair[1], th.Shard} {
		sc := startThanos(t, o.Binary, fmt.Sprintf("sidecar-%d", i), true,
			"sidecar", "--prometheus.url="+p.URL)
		th.Sidecars = append(th.Sidecars, sc)
		endpoints = append(endpoints, "--endpoint-strict="+sc.GRPCAddr)
	}
	th.Query = startThanos(t, o.Binary, "query", true, append([]string{"query",
		"--query.replica-label=" + ThanosReplicaLabel,
	}, endpoints...)...)
	th.Frontend = startThanos(t, o.Binary, "query-frontend", false, "query-frontend",
		"--query-frontend.downstream-url="+th.Query.URL,
		"--query-range.response-cache-config="+inMemoryCache,
		"--labels.response-cache-config="+inMemoryCache,
	)

	// Ready only once the frontend answers with every series exactly once:
	// all sidecars are connected and the HA pair is deduplicated.
	q := url.Values{"query": {`count({__name__=~".+"})`}, "time": {strconv.FormatInt(th.End.Unix(), 10)}}
	for _, c := range []*ThanosComponent{th.Query, th.Frontend} {
		err := c.proc.waitUntil(60*time.Second, func() error {
			n, err := countAt(t.Context(), c.URL+"/api/v1/query?"+q.Encode())
			if err == nil && n != th.Series {
				err = fmt.Errorf("%d series at End, want %d", n, th.Series)
			}
			return err
		})
		if err != nil {
			t.Fatalf("%v; last lines of %s:\n%s", err, c.LogPath, c.proc.tail(40))
		}
	}
	return th
}

// inMemoryCache is Thanos's in-memory results cache, without expiry.
const inMemoryCache = `type: IN-MEMORY
config:
  max_size: 64MB`

// startThanos runs one thanos subcommand on fresh loopback ports and waits
// for /-/ready.
func startThanos(t testing.TB, bin, name string, grpc bool, args ...string) *ThanosComponent {
	t.Helper()
	dir := t.TempDir()
	port, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	c := &ThanosComponent{Addr: "127.0.0.1:" + strconv.Itoa(port), LogPath: filepath.Join(dir, name+".log")}
	c.URL = "http://" + c.Addr
	args = append(args, "--http-address="+c.Addr, "--log.level=info")
	if grpc {
		gport, err := freePort()
		if err != nil {
			t.Fatal(err)
		}
		c.GRPCAddr = "127.0.0.1:" + strconv.Itoa(gport)
		args = append(args, "--grpc-address="+c.GRPCAddr)
	}
	c.proc, err = startProcess("thanos "+name, c.LogPath, dir, nil, bin, args...)
	if err != nil {
		t.Fatal(err)
	}
	c.proc.cleanup(t)
	if err := c.proc.waitUntil(60*time.Second, func() error {
		_, err := get(t.Context(), c.URL+"/-/ready")
		return err
	}); err != nil {
		t.Fatalf("%v; last lines of %s:\n%s", err, c.LogPath, c.proc.tail(40))
	}
	return c
}

// Metrics returns the component's /metrics in the text format.
func (c *ThanosComponent) Metrics(ctx context.Context) (string, error) {
	b, err := get(ctx, c.URL+"/metrics")
	return string(b), err
}
