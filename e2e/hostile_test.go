package e2e

import (
	"bytes"
	"io"
	"net/http"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/prompb"

	"github.com/prom-tenant/caddy-prom-tenant/internal/testenv"
)

// TestHostileSeriesOnRealPrometheus writes series with awkward names into a
// real Prometheus (2.42 on Debian, where "." does not match a newline) and
// attacks through the proxy: injection through a __name__ value, a name with
// a newline that a careless "match nothing" selector would match.
func TestHostileSeriesOnRealPrometheus(t *testing.T) {
	p := proxyOverSeries(t, `["http_.*", up]`,
		map[string]string{"__name__": "secret\nmetric", "namespace": "other"},
		map[string]string{"__name__": "db_password_len", "namespace": "other"},
		map[string]string{"__name__": "http_requests_total", "namespace": "t", "job": "my-app"},
	)
	prom := p.prom
	for _, q := range []string{
		`{__name__="http_x or db_password_len or http_y"}`,
		`{__name__="http_x{namespace=~'.+'} or http_y"}`,
		`{namespace="other"}`,
		`nonexistent`,
		`count({__name__=~".+",namespace="other"})`,
		`{__name__=~"secret.*"}`,
	} {
		body := get(t, p.url+"/api/v1/query?"+url.Values{"query": {q}}.Encode(), "t")
		if !strings.Contains(body, `"status":"success"`) || strings.Contains(body, "other") || strings.Contains(body, "secret") {
			t.Errorf("query %s: %s", q, body)
		}
	}
	body := get(t, p.url+"/api/v1/series?"+url.Values{"match[]": {`{namespace="other"}`}}.Encode(), "t")
	if !strings.Contains(body, `"data":[]`) {
		t.Errorf("series of another namespace: %s", body)
	}
	// The data is there: the same query without the proxy finds it.
	if body := get(t, prom.URL+"/api/v1/query?"+url.Values{"query": {`{namespace="other"}`}}.Encode(), ""); !strings.Contains(body, "secret\\nmetric") {
		t.Fatalf("remote-written series missing upstream: %s", body)
	}
}

func get(t *testing.T, target, tenant string) string {
	t.Helper()
	_, body := getAs(t, target, tenant)
	return body
}

// remoteWrite sends one sample (now, value 42) per series with Remote-Write 1.0.
func remoteWrite(t *testing.T, base string, series ...map[string]string) {
	t.Helper()
	var req prompb.WriteRequest
	for _, s := range series {
		ts := prompb.TimeSeries{Samples: []prompb.Sample{{Value: 42, Timestamp: time.Now().UnixMilli()}}}
		for k, v := range s {
			ts.Labels = append(ts.Labels, prompb.Label{Name: k, Value: v})
		}
		slices.SortFunc(ts.Labels, func(a, b prompb.Label) int { return strings.Compare(a.Name, b.Name) })
		req.Timeseries = append(req.Timeseries, ts)
	}
	raw, err := req.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	hr, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, base+"/api/v1/write", bytes.NewReader(snappy.Encode(nil, raw)))
	hr.Header.Set("Content-Encoding", "snappy")
	hr.Header.Set("Content-Type", "application/x-protobuf")
	hr.Header.Set("X-Prometheus-Remote-Write-Version", "0.1.0")
	resp, err := http.DefaultClient.Do(hr)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("remote write: %d %s", resp.StatusCode, b)
	}
}

// proxyOverSeries starts a Prometheus holding only series (remote-written),
// and bin/caddy in front of it for one tenant, namespace t, isolated to its
// namespace and allowed the metric patterns metrics (a YAML list).
func proxyOverSeries(t *testing.T, metrics string, series ...map[string]string) *proxy {
	t.Helper()
	prom := testenv.StartPrometheus(t)
	remoteWrite(t, prom.URL, series...)
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "t.yaml"), `apiVersion: observability.ethos.io/v1alpha1
kind: MetricAccess
metadata: {name: app, namespace: t}
spec: {metricIsolation: true, metrics: `+metrics+`}
`)
	return startProxyTo(t, prom, dir, "")
}
