package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang/snappy"
	v1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/prompb"

	"github.com/prom-tenant/caddy-prom-tenant/internal/testenv"
	"github.com/prom-tenant/caddy-prom-tenant/remotewrite"
)

// exposition is a scrape target holding series of several tenants; every
// scrape moves the values, so each sample is distinguishable.
type exposition struct {
	mu sync.Mutex
	n  int
}

func (e *exposition) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	e.mu.Lock()
	e.n++
	n := e.n
	e.mu.Unlock()
	w.Header().Set("Content-Type", "text/plain; version=0.0.4")
	fmt.Fprintf(w, "app_requests_total{namespace=\"team-a\",path=\"/x\"} %d\n", n)
	fmt.Fprintf(w, "app_requests_total{namespace=\"team-a\",path=\"/y\"} %d\n", 2*n)
	fmt.Fprintf(w, "app_temperature_celsius{namespace=\"team-a\",instance=\"sensor-1\"} %g\n", 20+float64(n%7)*0.25)
	fmt.Fprintf(w, "app_secret_total{namespace=\"team-a\"} 42\n") // not in team-a's patterns
	fmt.Fprintf(w, "app_requests_total{namespace=\"team-b\",path=\"/x\"} %d\n", 3*n)
	fmt.Fprintf(w, "app_requests_total{namespace=\"team-c\",path=\"/x\"} %d\n", 4*n)
	fmt.Fprintf(w, "app_requests_total{namespace=\"team-d\",path=\"/x\"} %d\n", 5*n)
	fmt.Fprintf(w, "app_requests_total{namespace=\"team-j\",path=\"/x\"} %d\n", 6*n)
	fmt.Fprintf(w, "app_requests_total{namespace=\"team-k\",path=\"/x\"} %d\n", 7*n)
	fmt.Fprintf(w, "app_requests_total{namespace=\"team-s\",path=\"/x\"} %d\n", 8*n)
	if n <= 8 {
		// Ends early: the source writes a staleness marker, which must be copied.
		fmt.Fprintf(w, "app_ephemeral{namespace=\"team-a\"} %d\n", n)
	}
}

// recorder sits in front of a receiver's /api/v1/write: it forwards each
// request and, when the receiver acknowledges it, notes every sample, so a
// test can see a sample acknowledged twice. It answers 503 when the receiver
// is down.
type recorder struct {
	target string

	mu    sync.Mutex
	acked map[string]int // series + timestamp -> times acknowledged
	total int
}

func (r *recorder) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(req.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	fwd, err := http.NewRequestWithContext(req.Context(), http.MethodPost, r.target+"/api/v1/write", bytes.NewReader(body))
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	for _, h := range []string{"Content-Type", "Content-Encoding", "X-Prometheus-Remote-Write-Version"} {
		fwd.Header.Set(h, req.Header.Get(h))
	}
	resp, err := http.DefaultClient.Do(fwd)
	if err != nil {
		http.Error(w, "receiver down: "+err.Error(), http.StatusServiceUnavailable)
		return
	}
	defer resp.Body.Close()
	answer, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 == 2 {
		r.note(body)
	}
	w.WriteHeader(resp.StatusCode)
	w.Write(answer)
}

func (r *recorder) note(body []byte) {
	raw, err := snappy.Decode(nil, body)
	if err != nil {
		panic(err) // the receiver accepted it, so it decodes
	}
	var wr prompb.WriteRequest
	if err := wr.Unmarshal(raw); err != nil {
		panic(err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, ts := range wr.Timeseries {
		var key strings.Builder
		for _, l := range ts.Labels {
			fmt.Fprintf(&key, "%s=%q,", l.Name, l.Value)
		}
		for _, s := range ts.Samples {
			r.acked[fmt.Sprintf("%s@%d", key.String(), s.Timestamp)]++
			r.total++
		}
	}
}

// duplicates returns the samples acknowledged more than once.
func (r *recorder) duplicates() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var d []string
	for k, n := range r.acked {
		if n > 1 {
			d = append(d, fmt.Sprintf("%s ×%d", k, n))
		}
	}
	slices.Sort(d)
	return d
}

func (r *recorder) acknowledged() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.total
}

const metricAccessTemplate = `apiVersion: observability.ethos.io/v1alpha1
kind: MetricAccess
metadata:
  name: %s
  namespace: %s
spec:
  metricIsolation: true
  metrics: %s
%s`

// rwStatus reads the copiers' state from Caddy's admin API.
func rwStatus(t *testing.T, c *testenv.Caddy, namespace string) []remotewrite.Status {
	t.Helper()
	resp, err := http.Get(c.AdminURL + "/prom_tenant/copiers?namespace=" + namespace)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("status: %s: %s", resp.Status, b)
	}
	var out []remotewrite.Status
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatal(err)
	}
	return out
}

// oneStatus is the state of the namespace's only copier.
func oneStatus(t *testing.T, c *testenv.Caddy, namespace string) remotewrite.Status {
	t.Helper()
	s := rwStatus(t, c, namespace)
	if len(s) != 1 {
		t.Fatalf("%s: %d copiers, want 1: %+v", namespace, len(s), s)
	}
	return s[0]
}

// waitStatus polls the namespace's copier until ok holds.
func waitStatus(t *testing.T, c *testenv.Caddy, namespace string, timeout time.Duration, what string, ok func(remotewrite.Status) bool) remotewrite.Status {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		s := oneStatus(t, c, namespace)
		if ok(s) {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not %s after %s: %+v", namespace, what, timeout, s)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// rawSamples returns every raw sample of the series selector selects in
// (at-10m, at], keyed by the series' labels.
func rawSamples(t *testing.T, api v1.API, selector string, at time.Time) map[string][]model.SamplePair {
	t.Helper()
	v, _, _, err := api.Query(t.Context(), selector+"[10m]", at)
	if err != nil {
		t.Fatalf("%s: %v", selector, err)
	}
	out := map[string][]model.SamplePair{}
	for _, s := range v.(model.Matrix) {
		out[s.Metric.String()] = s.Values
	}
	return out
}

// instant returns the instant vector of selector at `at`, keyed by labels.
func instant(t *testing.T, api v1.API, selector string, at time.Time) map[string]model.SampleValue {
	t.Helper()
	v, _, _, err := api.Query(t.Context(), selector, at)
	if err != nil {
		t.Fatalf("%s: %v", selector, err)
	}
	out := map[string]model.SampleValue{}
	for _, s := range v.(model.Vector) {
		out[s.Metric.String()] = s.Value
	}
	return out
}

// relabel is how a copy's series are named: the test's own statement of
// the extraLabels rule the README documents.
type relabel struct {
	extra map[string]string
	honor bool
}

func (r relabel) apply(m model.Metric) model.Metric {
	out := m.Clone()
	for k, v := range r.extra {
		name := model.LabelName(k)
		old, has := m[name]
		switch {
		case has && r.honor:
		case has: // the test's extra labels never collide with exported_ names
			out["exported_"+name] = old
			out[name] = model.LabelValue(v)
		default:
			out[name] = model.LabelValue(v)
		}
	}
	return out
}

// assertExactCopy checks that dst holds exactly the series src's selector
// selects, renamed by rule, with the same raw samples up to `at`, and that
// both answer the same instant vector at `at` (staleness included).
func assertExactCopy(t *testing.T, src, dst v1.API, selector string, rule relabel, at time.Time) {
	t.Helper()
	want := map[string][]model.SamplePair{}
	mv, _, _, err := src.Query(t.Context(), selector+"[10m]", at)
	if err != nil {
		t.Fatal(err)
	}
	samples := 0
	for _, s := range mv.(model.Matrix) {
		want[rule.apply(s.Metric).String()] = s.Values
		samples += len(s.Values)
	}
	if samples < 10 {
		t.Fatalf("source has only %d samples for %s up to %s: the test would prove nothing", samples, selector, at)
	}
	got := rawSamples(t, dst, `{__name__=~".+"}`, at)
	for k, w := range want {
		g, ok := got[k]
		switch {
		case !ok:
			t.Errorf("copy lacks series %s (%d samples)", k, len(w))
		case !slices.Equal(g, w):
			t.Errorf("series %s: copy has %d samples, source %d\ncopy:   %v\nsource: %v", k, len(g), len(w), g, w)
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("copy holds series %s, which the source's allowed set does not", k)
		}
	}
	wantNow := map[string]model.SampleValue{}
	vv, _, _, err := src.Query(t.Context(), selector, at)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range vv.(model.Vector) {
		wantNow[rule.apply(s.Metric).String()] = s.Value
	}
	if gotNow := instant(t, dst, `{__name__=~".+"}`, at); !maps.Equal(gotNow, wantNow) {
		t.Errorf("instant vector at %s: copy %v, source %v", at, gotNow, wantNow)
	}
	t.Logf("copy of %s matches the source up to %s: %d series, %d samples", selector, at.Format(time.RFC3339Nano), len(want), samples)
}

// startSource starts a Prometheus scraping e every second, and waits until
// it has data.
func startSource(t *testing.T, e http.Handler) *testenv.Prometheus {
	t.Helper()
	target := httptest.NewServer(e)
	t.Cleanup(target.Close)
	src := testenv.StartPrometheusWith(t, testenv.PrometheusOptions{
		Keep: func(map[string]string) bool { return false },
		Config: fmt.Sprintf(`global:
  scrape_interval: 1s
scrape_configs:
- job_name: apps
  honor_labels: true
  static_configs:
  - targets: [%q]
`, strings.TrimPrefix(target.URL, "http://")),
	})
	api := newAPI(t, src.URL, "")
	deadline := time.Now().Add(30 * time.Second)
	for len(instant(t, api, `app_requests_total`, time.Now())) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("source has scraped nothing after 30s")
		}
		time.Sleep(200 * time.Millisecond)
	}
	return src
}

func emptyPrometheus(t *testing.T, args ...string) *testenv.Prometheus {
	t.Helper()
	return testenv.StartPrometheusWith(t, testenv.PrometheusOptions{Keep: func(map[string]string) bool { return false }, Args: args})
}

// TestRemoteWrite copies tenants' series from a scraping Prometheus into a
// receiving Prometheus (through the remoteWrite target and the prometheus
// target) and a Pushgateway, then takes the receiver and the proxy down and
// up again: the copy must match the source exactly, with nothing lost and
// nothing acknowledged twice.
func TestRemoteWrite(t *testing.T) {
	t.Parallel() // see "Parallel tests" in main_test.go
	src := startSource(t, new(exposition))
	srcAPI := newAPI(t, src.URL, "")
	recvA := emptyPrometheus(t)
	rec := &recorder{target: recvA.URL, acked: map[string]int{}}
	recSrv := httptest.NewServer(rec)
	t.Cleanup(recSrv.Close)
	recvD := emptyPrometheus(t)
	pgw := testenv.StartPushgateway(t)

	dir := t.TempDir()
	write := func(name, ns, metrics, rw string) {
		writeFile(t, filepath.Join(dir, ns+".yaml"), fmt.Sprintf(metricAccessTemplate, name, ns, metrics, rw))
	}
	writeTeamA := func(interval string) {
		write("copy", "team-a", `["app_requests_total", "app_temperature_celsius", "app_ephemeral"]`, fmt.Sprintf(`  remoteWrite:
    enabled: true
    interval: %s
    extraLabels: {cluster: c1, instance: copied}
    target:
      type: remote_write
      remoteWrite:
        url: %s/api/v1/write
`, interval, recSrv.URL))
	}
	writeTeamA("5s")
	write("push", "team-b", `["app_requests_total"]`, fmt.Sprintf(`  remoteWrite:
    enabled: true
    interval: 5s
    target:
      type: pushgateway
      pushgateway:
        url: %s
        jobName: team-b-copy
        groupingKey: {cluster: c1}
`, pgw.URL))
	write("read-only", "team-c", `["app_requests_total"]`, "")
	recvDPort := strings.TrimPrefix(recvD.Addr, "127.0.0.1:")
	write("own-prometheus", "team-d", `["app_requests_total"]`, fmt.Sprintf(`  remoteWrite:
    enabled: true
    interval: 5s
    honorLabels: true
    extraLabels: {cluster: c1, namespace: ignored}
    target:
      type: prometheus
      prometheus:
        serviceName: prometheus
        servicePort: %s
`, recvDPort))
	write("elsewhere", "team-e", `["app_requests_total"]`, `  remoteWrite:
    enabled: true
    target:
      type: remote_write
      remoteWrite:
        url: http://192.0.2.1/api/v1/write
`)

	admin := testenv.FreePort(t)
	caddyfile := func(interval string) string {
		return fmt.Sprintf(`{
	admin 127.0.0.1:%d
	prom_tenancy {
		directory %s {
			reload_interval 100ms
		}
	}
	prom_remote_write %s {
		interval %s
		read_delay 2s
		initial_lookback 2m
		allow_url %s/api/v1/write %s
		service_address 127.0.0.1:{port}
	}
}
`, admin, dir, src.URL, interval, recSrv.URL, pgw.URL)
	}
	caddy := testenv.StartCaddy(t, caddyfile("5s"))

	teamA := `{__name__=~"app_requests_total|app_temperature_celsius|app_ephemeral",namespace="team-a"}`
	ruleA := relabel{extra: map[string]string{"cluster": "c1", "instance": "copied"}}
	teamD := `{__name__="app_requests_total",namespace="team-d"}`
	ruleD := relabel{extra: map[string]string{"cluster": "c1", "namespace": "ignored"}, honor: true}
	apiA, apiD := newAPI(t, recvA.URL, ""), newAPI(t, recvD.URL, "")

	copiedPast := func(ns string, t0 time.Time) remotewrite.Status {
		return waitStatus(t, caddy, ns, 60*time.Second, "copied past "+t0.Format(time.TimeOnly), func(s remotewrite.Status) bool {
			return s.LastError == "" && s.CopiedUntil.After(t0)
		})
	}
	ackedBefore := 0 // acknowledged before the proxy's last restart, which resets its counters
	checkA := func(what string) {
		t.Helper()
		s := copiedPast("team-a", time.Now().Add(-2*time.Second).Add(5*time.Second))
		t.Logf("%s: team-a %+v", what, s)
		assertExactCopy(t, srcAPI, apiA, teamA, ruleA, s.CopiedUntil)
		if d := rec.duplicates(); len(d) > 0 {
			t.Errorf("%s: %d samples acknowledged more than once, e.g. %v", what, len(d), d[:min(5, len(d))])
		}
		// Counted once: every sample the status calls sent was acknowledged once.
		if s, acked := oneStatus(t, caddy, "team-a"), rec.acknowledged()-ackedBefore; s.SamplesSent != uint64(acked) {
			t.Errorf("%s: status says %d samples sent, the receiver acknowledged %d", what, s.SamplesSent, acked)
		}
	}

	t.Run("copies exactly", func(t *testing.T) {
		// 15s of copying: three intervals, the ephemeral series begun and ended.
		time.Sleep(10 * time.Second)
		checkA("first copy")
		s := copiedPast("team-d", time.Now().Add(-2*time.Second))
		assertExactCopy(t, srcAPI, apiD, teamD, ruleD, s.CopiedUntil)
		if s.Target != "prometheus http://127.0.0.1:"+recvDPort+"/api/v1/write" {
			t.Errorf("team-d target %q: the Service in the tenant's namespace, by service_address", s.Target)
		}
	})

	t.Run("pushgateway", func(t *testing.T) {
		s := copiedPast("team-b", time.Now().Add(-2*time.Second))
		// The group holds the current value of team-b's series: the source's
		// value at copied_until, with the grouping key's labels.
		for try := 0; ; try++ {
			v, _, _, err := srcAPI.Query(t.Context(), `app_requests_total{namespace="team-b"}`, s.CopiedUntil)
			if err != nil {
				t.Fatal(err)
			}
			// The grouping key's labels are applied as extraLabels are
			// without honorLabels: a clashing job moves to exported_job.
			group := relabel{extra: map[string]string{"job": "team-b-copy", "cluster": "c1"}}
			want := map[string]model.SampleValue{}
			for _, smp := range v.(model.Vector) {
				want[group.apply(smp.Metric).String()] = smp.Value
			}
			got := pushgatewaySeries(t, pgw.URL, "app_requests_total")
			after := oneStatus(t, caddy, "team-b")
			if !after.CopiedUntil.Equal(s.CopiedUntil) && try < 3 {
				s = after // a push happened while reading: compare again
				continue
			}
			if len(want) != 1 || !maps.Equal(got, want) {
				t.Errorf("pushgateway: got %v, want %v", got, want)
			}
			break
		}
	})

	t.Run("target outside the allow-list", func(t *testing.T) {
		s := waitStatus(t, caddy, "team-e", 20*time.Second, "failed", func(s remotewrite.Status) bool { return s.LastError != "" })
		if !strings.Contains(s.LastError, "not permitted by the prom_remote_write allow_url list") || s.SamplesSent != 0 {
			t.Errorf("team-e: %+v", s)
		}
		if log := readFile(t, caddy.LogPath); !strings.Contains(log, `"tenant":"team-e"`) || !strings.Contains(log, "not permitted") {
			t.Errorf("the log does not say why team-e copies nothing")
		}
		if len(rwStatus(t, caddy, "team-c")) != 0 {
			t.Error("team-c has no remoteWrite and must have no copier")
		}
	})

	t.Run("config reload", func(t *testing.T) {
		// A reload that changes nothing team-a's copier uses keeps it
		// running; team-e's, which uses the default interval, is replaced.
		before := oneStatus(t, caddy, "team-a")
		caddy.Reload(t, caddyfile("6s"))
		after := oneStatus(t, caddy, "team-a")
		if after.SamplesSent < before.SamplesSent || after.Interval != "5s" {
			t.Errorf("team-a after a reload: %+v, before: %+v", after, before)
		}
		if n := strings.Count(readFile(t, caddy.LogPath), `"msg":"remote write started","tenant":"team-a"`); n != 1 {
			t.Errorf("team-a's copier started %d times; a reload must keep it", n)
		}
		if e := oneStatus(t, caddy, "team-e"); e.Interval != "6s" {
			t.Errorf("team-e interval %s after the reload, want the new default 6s", e.Interval)
		}
		// Changing team-a's own interval replaces its copier; the new one
		// goes on from the old one's position.
		writeTeamA("7s")
		waitStatus(t, caddy, "team-a", 10*time.Second, "on the new interval", func(s remotewrite.Status) bool { return s.Interval == "7s" })
		checkA("after a new interval")
	})

	t.Run("receiver outage", func(t *testing.T) {
		recvA.Stop()
		s := waitStatus(t, caddy, "team-a", 30*time.Second, "failing", func(s remotewrite.Status) bool { return s.LastError != "" })
		if !strings.Contains(s.LastError, "503") {
			t.Errorf("outage error %q does not name the status", s.LastError)
		}
		if s.State != "retrying" || s.StateSince.IsZero() {
			t.Errorf("state %q since %s during the outage, want retrying", s.State, s.StateSince)
		}
		time.Sleep(10 * time.Second) // several intervals down
		recvA.Restart(t)
		checkA("after the receiver's outage")
		if s := oneStatus(t, caddy, "team-a"); s.State != "copying" {
			t.Errorf("state %q after the receiver's outage, want copying", s.State)
		}
	})

	t.Run("proxy restart", func(t *testing.T) {
		caddy.Stop()
		ackedBefore = rec.acknowledged()
		time.Sleep(7 * time.Second)
		caddy.Restart(t)
		checkA("after the proxy's restart")
		if log := readFile(t, caddy.LogPath); !strings.Contains(log, "remote write resumes") {
			t.Error("the restarted proxy did not resume from its saved progress")
		}
	})
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// pushgatewaySeries scrapes the Pushgateway as Prometheus would and returns
// the series of the named family, labels → value.
func pushgatewaySeries(t *testing.T, base, family string) map[string]model.SampleValue {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]model.SampleValue{}
	if mf, ok := fams[family]; ok {
		for _, m := range mf.GetMetric() {
			metric := model.Metric{model.MetricNameLabel: model.LabelValue(family)}
			for _, l := range m.GetLabel() {
				metric[model.LabelName(l.GetName())] = model.LabelValue(l.GetValue())
			}
			out[metric.String()] = model.SampleValue(m.GetUntyped().GetValue())
		}
	}
	return out
}
