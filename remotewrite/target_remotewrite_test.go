package remotewrite

// Tests of the remote-write target (target_remotewrite.go) against
// client_golang's own receiver: encoding in both protocols, retries, status
// classification and partial writes. This file is over 500 lines because
// those cases share one recording receiver and its fixtures.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"sync"
	"testing"

	"github.com/golang/snappy"
	"github.com/prometheus/client_golang/exp/api/remote"
	config_util "github.com/prometheus/common/config"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/prompb"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"
	"github.com/prometheus/prometheus/tsdb/tsdbutil"

	"github.com/prom-tenant/caddy-prom-tenant/tenancy/v1alpha1"
)

// The test batch: series A and B take floats (A ends with a staleness
// marker), C integer histograms, D float histograms; E has no sample. The
// samples are in time order, as the copier sends them, and interleave the
// series.
var (
	rwA = labels.FromStrings("__name__", "a_total", "namespace", "t", "pod", "p1")
	rwB = labels.FromStrings("__name__", "b", "namespace", "t")
	rwC = labels.FromStrings("__name__", "c_seconds", "namespace", "t")
	rwD = labels.FromStrings("__name__", "d_seconds", "le", "x", "namespace", "t")
	rwE = labels.FromStrings("__name__", "e", "namespace", "t")

	rwH1, rwH2   = tsdbutil.GenerateTestHistogram(1), tsdbutil.GenerateTestHistogram(2)
	rwFH1, rwFH2 = tsdbutil.GenerateTestFloatHistogram(3), tsdbutil.GenerateTestFloatHistogram(4)
	rwStaleNaN   = math.Float64frombits(value.StaleNaN)
)

const (
	idxA = iota
	idxB
	idxC
	idxD
	idxE
)

func testBatch() *batch {
	return &batch{
		series: []labels.Labels{rwA, rwB, rwC, rwD, rwE},
		samples: []sample{
			{t: 10, v: 1, series: idxB},
			{t: 10, v: 2, series: idxA},
			{t: 20, v: 3, series: idxB},
			{t: 20, hist: 1, series: idxC},
			{t: 20, hist: 2, series: idxD},
			{t: 30, v: 4, series: idxA},
			{t: 30, hist: 3, series: idxC},
			{t: 30, hist: 4, series: idxD},
			{t: 40, v: rwStaleNaN, series: idxA},
		},
		hists: []hist{{h: rwH1}, {fh: rwFH1}, {h: rwH2}, {fh: rwFH2}},
	}
}

// testBatchWant is what a receiver must get from testBatch: one time series
// per series in order of first appearance, each with all of its samples in
// time order.
func testBatchWant() []string {
	return []string{
		rwLine(rwB, 10, "1"), rwLine(rwB, 20, "3"),
		rwLine(rwA, 10, "2"), rwLine(rwA, 30, "4"), rwLine(rwA, 40, "stale"),
		rwLine(rwC, 20, "h"+rwH1.String()), rwLine(rwC, 30, "h"+rwH2.String()),
		rwLine(rwD, 20, "fh"+rwFH1.String()), rwLine(rwD, 30, "fh"+rwFH2.String()),
	}
}

func rwLine(lset labels.Labels, t int64, v string) string {
	return fmt.Sprintf("%s %d %s", lset, t, v)
}

func floatText(v float64) string {
	switch {
	case value.IsStaleNaN(v):
		return "stale"
	case math.IsNaN(v):
		return "NaN"
	}
	return strconv.FormatFloat(v, 'g', -1, 64)
}

// linesV1 renders a 1.0 request, time series by time series.
func linesV1(t *testing.T, req *prompb.WriteRequest) []string {
	t.Helper()
	var out []string
	var sb labels.ScratchBuilder
	for _, ts := range req.Timeseries {
		lset := ts.ToLabels(&sb, nil)
		if len(ts.Samples) > 0 && len(ts.Histograms) > 0 {
			t.Errorf("series %s has both samples and histograms", lset)
		}
		for _, s := range ts.Samples {
			out = append(out, rwLine(lset, s.Timestamp, floatText(s.Value)))
		}
		for _, h := range ts.Histograms {
			if h.IsFloatHistogram() {
				out = append(out, rwLine(lset, h.Timestamp, "fh"+h.ToFloatHistogram().String()))
			} else {
				out = append(out, rwLine(lset, h.Timestamp, "h"+h.ToIntHistogram().String()))
			}
		}
	}
	return out
}

// linesV2 renders a 2.0 request and counts its float and histogram samples.
func linesV2(t *testing.T, req *writev2.Request) (out []string, floats, histograms int) {
	t.Helper()
	if len(req.Symbols) == 0 || req.Symbols[0] != "" {
		t.Errorf("symbols %q do not start with the empty string", req.Symbols)
	}
	var sb labels.ScratchBuilder
	for _, ts := range req.Timeseries {
		lset, err := ts.ToLabels(&sb, req.Symbols)
		if err != nil {
			t.Errorf("labels refs %v: %v", ts.LabelsRefs, err)
			continue
		}
		if len(ts.Samples) > 0 && len(ts.Histograms) > 0 {
			t.Errorf("series %s has both samples and histograms", lset)
		}
		for _, s := range ts.Samples {
			if s.StartTimestamp != 0 {
				t.Errorf("series %s: start timestamp %d set", lset, s.StartTimestamp)
			}
			out = append(out, rwLine(lset, s.Timestamp, floatText(s.Value)))
			floats++
		}
		for _, h := range ts.Histograms {
			if h.IsFloatHistogram() {
				out = append(out, rwLine(lset, h.Timestamp, "fh"+h.ToFloatHistogram().String()))
			} else {
				out = append(out, rwLine(lset, h.Timestamp, "h"+h.ToIntHistogram().String()))
			}
			histograms++
		}
	}
	return out, floats, histograms
}

func TestEncodeV1(t *testing.T) {
	req := encodeV1(testBatch())
	if len(req.Timeseries) != 4 {
		t.Errorf("%d time series, want 4 (one per series with samples)", len(req.Timeseries))
	}
	if got, want := linesV1(t, req), testBatchWant(); !slices.Equal(got, want) {
		t.Errorf("encoded:\n got %q\nwant %q", got, want)
	}
	// The staleness marker keeps its exact bits.
	for _, ts := range req.Timeseries {
		for _, s := range ts.Samples {
			if math.IsNaN(s.Value) && math.Float64bits(s.Value) != value.StaleNaN {
				t.Errorf("NaN %x is not the staleness marker", math.Float64bits(s.Value))
			}
		}
	}
}

func TestEncodeV2(t *testing.T) {
	req := encodeV2(testBatch())
	if len(req.Timeseries) != 4 {
		t.Errorf("%d time series, want 4", len(req.Timeseries))
	}
	got, floats, histograms := linesV2(t, req)
	if want := testBatchWant(); !slices.Equal(got, want) {
		t.Errorf("encoded:\n got %q\nwant %q", got, want)
	}
	if floats != 5 || histograms != 4 {
		t.Errorf("%d floats and %d histograms, want 5 and 4", floats, histograms)
	}
	// Symbols are shared: each string once.
	seen := map[string]bool{}
	for _, s := range req.Symbols {
		if seen[s] {
			t.Errorf("symbol %q repeated", s)
		}
		seen[s] = true
	}
}

func TestEncodeKeepsEverySample(t *testing.T) {
	// Many samples of few series, interleaved: every one arrives, grouped.
	b := &batch{series: []labels.Labels{rwA, rwB, rwC}}
	var want []string
	perSeries := map[int][]string{}
	for i := range 300 {
		si := (i * 7) % 3
		ts := int64(1000 + i)
		b.samples = append(b.samples, sample{t: ts, v: float64(i), series: int32(si)})
		perSeries[si] = append(perSeries[si], rwLine(b.series[si], ts, floatText(float64(i))))
	}
	for _, si := range []int{0, 1, 2} { // (i*7)%3 for i = 0, 1, 2 is 0, 1, 2
		want = append(want, perSeries[si]...)
	}
	if got := linesV1(t, encodeV1(b)); !slices.Equal(got, want) {
		t.Errorf("v1 lost or reordered samples: got %d lines, want %d", len(got), len(want))
	}
	if got, _, _ := linesV2(t, encodeV2(b)); !slices.Equal(got, want) {
		t.Errorf("v2 lost or reordered samples: got %d lines, want %d", len(got), len(want))
	}
}

func TestEncodeEmptyBatch(t *testing.T) {
	b := &batch{series: []labels.Labels{rwA}}
	if req := encodeV1(b); len(req.Timeseries) != 0 {
		t.Errorf("v1: %d time series from no samples", len(req.Timeseries))
	}
	if req := encodeV2(b); len(req.Timeseries) != 0 {
		t.Errorf("v2: %d time series from no samples", len(req.Timeseries))
	}
}

// rwAttempt is one request the receiver got, decoded from the wire.
type rwAttempt struct {
	method, path string
	header       http.Header
	lines        []string
}

// testReceiver is a remote-write endpoint: it records every attempt,
// decoded from the wire (snappy, then prompb or writev2), and answers
// with status(attempt) or, when that is 0, hands the request to
// client_golang's own receiver (remote.NewWriteHandler), which checks the
// protocol and answers 2.0 requests with the written-samples headers.
type testReceiver struct {
	t       *testing.T
	srv     *httptest.Server
	status  func(attempt int) int
	handler http.Handler
	// written, if set, turns the float and histogram counts of a 2.0
	// request into the counts the receiver reports.
	written func(floats, histograms int) (int, int)

	mu       sync.Mutex
	attempts []rwAttempt
	stored   [][]string // what the client_golang receiver stored
}

func newTestReceiver(t *testing.T, accept remote.MessageTypes, status func(int) int) *testReceiver {
	rc := &testReceiver{t: t, status: status}
	if rc.status == nil {
		rc.status = func(int) int { return 0 }
	}
	rc.handler = remote.NewWriteHandler(rc, accept)
	rc.srv = httptest.NewServer(rc)
	t.Cleanup(rc.srv.Close)
	return rc
}

func (rc *testReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		rc.t.Errorf("reading request: %v", err)
	}
	a := rwAttempt{method: r.Method, path: r.URL.Path, header: r.Header.Clone()}
	if raw, err := snappy.Decode(nil, body); err != nil {
		rc.t.Errorf("request body is not snappy: %v", err)
	} else if mt, err := remote.ParseProtoMsg(r.Header.Get("Content-Type")); err != nil {
		rc.t.Errorf("content type %q: %v", r.Header.Get("Content-Type"), err)
	} else {
		a.lines, _, _ = rc.decode(mt, raw)
	}
	rc.mu.Lock()
	n := len(rc.attempts)
	rc.attempts = append(rc.attempts, a)
	rc.mu.Unlock()

	switch st := rc.status(n); {
	case st == 0:
		r.Body = io.NopCloser(bytes.NewReader(body))
		rc.handler.ServeHTTP(w, r)
	case st/100 == 2:
		w.WriteHeader(st)
	default:
		http.Error(w, "refused by the test", st)
	}
}

func (rc *testReceiver) decode(mt remote.WriteMessageType, raw []byte) (lines []string, floats, histograms int) {
	switch mt {
	case remote.WriteV1MessageType:
		var req prompb.WriteRequest
		if err := req.Unmarshal(raw); err != nil {
			rc.t.Errorf("decoding a 1.0 request: %v", err)
			return nil, 0, 0
		}
		return linesV1(rc.t, &req), 0, 0
	case remote.WriteV2MessageType:
		var req writev2.Request
		if err := req.Unmarshal(raw); err != nil {
			rc.t.Errorf("decoding a 2.0 request: %v", err)
			return nil, 0, 0
		}
		return linesV2(rc.t, &req)
	}
	rc.t.Errorf("message type %q", mt)
	return nil, 0, 0
}

// Store is the storage of client_golang's receiver; the body is already
// decompressed.
func (rc *testReceiver) Store(r *http.Request, mt remote.WriteMessageType) (*remote.WriteResponse, error) {
	raw, err := io.ReadAll(r.Body)
	if err != nil {
		return nil, err
	}
	lines, floats, histograms := rc.decode(mt, raw)
	rc.mu.Lock()
	rc.stored = append(rc.stored, lines)
	rc.mu.Unlock()
	resp := remote.NewWriteResponse()
	if rc.written != nil {
		floats, histograms = rc.written(floats, histograms)
	}
	resp.Samples, resp.Histograms = floats, histograms
	return resp, nil
}

func (rc *testReceiver) url() string { return rc.srv.URL + "/api/v1/write" }

func (rc *testReceiver) snapshot() ([]rwAttempt, [][]string) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return slices.Clone(rc.attempts), slices.Clone(rc.stored)
}

// testTargetClient is the client newTarget gives a target: our User-Agent,
// the status recorder.
func testTargetClient(t *testing.T) *http.Client {
	t.Helper()
	c, err := (&targetSettings{userAgent: "prom-tenant-test/1.0"}).httpClient(config_util.HTTPClientConfig{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// retryLog records the reasons onRetry gets.
type retryLog struct {
	mu      sync.Mutex
	reasons []string
}

func (l *retryLog) onRetry(reason string, _ error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.reasons = append(l.reasons, reason)
}

func (l *retryLog) get() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.reasons)
}

func newTestRWTarget(t *testing.T, url, protocol string, retries int, log *retryLog) *remoteWriteTarget {
	t.Helper()
	tg, err := newRemoteWriteTarget(url, protocol, testTargetClient(t), retries, log.onRetry)
	if err != nil {
		t.Fatal(err)
	}
	return tg
}

func TestRemoteWriteSend(t *testing.T) {
	for _, tc := range []struct {
		protocol    string
		contentType string
		version     string
	}{
		{v1alpha1.RemoteWriteProtocol1, "application/x-protobuf", "0.1.0"},
		{v1alpha1.RemoteWriteProtocol2, "application/x-protobuf;proto=io.prometheus.write.v2.Request", "2.0.0"},
	} {
		t.Run(tc.protocol, func(t *testing.T) {
			rc := newTestReceiver(t, remote.MessageTypes{remote.WriteV1MessageType, remote.WriteV2MessageType}, nil)
			var log retryLog
			tg := newTestRWTarget(t, rc.url(), tc.protocol, 3, &log)
			if err := tg.send(context.Background(), testBatch()); err != nil {
				t.Fatalf("send: %v", err)
			}
			attempts, stored := rc.snapshot()
			if len(attempts) != 1 {
				t.Fatalf("%d attempts, want 1", len(attempts))
			}
			a := attempts[0]
			if a.method != http.MethodPost || a.path != "/api/v1/write" {
				t.Errorf("request %s %s, want POST /api/v1/write", a.method, a.path)
			}
			for h, want := range map[string]string{
				"Content-Type":                      tc.contentType,
				"Content-Encoding":                  "snappy",
				"X-Prometheus-Remote-Write-Version": tc.version,
				"User-Agent":                        "prom-tenant-test/1.0",
				"Retry-Attempt":                     "",
			} {
				if got := a.header.Get(h); got != want {
					t.Errorf("header %s = %q, want %q", h, got, want)
				}
			}
			want := testBatchWant()
			if !slices.Equal(a.lines, want) {
				t.Errorf("on the wire:\n got %q\nwant %q", a.lines, want)
			}
			if len(stored) != 1 || !slices.Equal(stored[0], want) {
				t.Errorf("client_golang's receiver stored %q, want %q", stored, want)
			}
			if r := log.get(); len(r) != 0 {
				t.Errorf("retries %v on a success", r)
			}
		})
	}
}

func TestRemoteWriteRetried(t *testing.T) {
	// The backoff starts at 1s (newRemoteWriteTarget fixes it), so each of
	// these waits 1-2s for its retry; they run in parallel.
	for _, tc := range []struct {
		name       string
		status     func(int) int
		wantErr    string // reason of the targetError; "" for success
		attempts   int
		wantReason []string
	}{
		{
			name:       "500 then success",
			status:     func(n int) int { return []int{500, 0}[n] },
			attempts:   2,
			wantReason: []string{"http_500"},
		},
		{
			name:       "503 until retries run out",
			status:     func(int) int { return 503 },
			wantErr:    "http_503",
			attempts:   2,
			wantReason: []string{"http_503"},
		},
		{
			name:       "429 until retries run out",
			status:     func(int) int { return 429 },
			wantErr:    "http_429",
			attempts:   2,
			wantReason: []string{"http_429"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			rc := newTestReceiver(t, remote.MessageTypes{remote.WriteV1MessageType}, tc.status)
			var log retryLog
			tg := newTestRWTarget(t, rc.url(), v1alpha1.RemoteWriteProtocol1, 1, &log)
			err := tg.send(context.Background(), testBatch())
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("send: %v", err)
				}
			} else {
				var te *targetError
				if !errors.As(err, &te) {
					t.Fatalf("send = %v, want a targetError", err)
				}
				if te.reason != tc.wantErr || te.drop {
					t.Errorf("targetError reason %q drop %v, want %q, not dropped", te.reason, te.drop, tc.wantErr)
				}
			}
			attempts, stored := rc.snapshot()
			if len(attempts) != tc.attempts {
				t.Fatalf("%d attempts, want %d", len(attempts), tc.attempts)
			}
			for i, a := range attempts {
				if !slices.Equal(a.lines, testBatchWant()) {
					t.Errorf("attempt %d sent %q", i, a.lines)
				}
				wantAttempt := ""
				if i > 0 {
					wantAttempt = strconv.Itoa(i)
				}
				if got := a.header.Get("Retry-Attempt"); got != wantAttempt {
					t.Errorf("attempt %d: Retry-Attempt %q, want %q", i, got, wantAttempt)
				}
			}
			if tc.wantErr == "" && (len(stored) != 1 || !slices.Equal(stored[0], testBatchWant())) {
				t.Errorf("stored %q", stored)
			}
			if got := log.get(); !slices.Equal(got, tc.wantReason) {
				t.Errorf("onRetry reasons %q, want %q", got, tc.wantReason)
			}
		})
	}
}

func TestRemoteWriteNotRetried(t *testing.T) {
	for _, tc := range []struct {
		status int
		drop   bool
	}{
		{400, true},
		{422, true},
		{401, false},
		{403, false},
		{404, false},
	} {
		t.Run(strconv.Itoa(tc.status), func(t *testing.T) {
			rc := newTestReceiver(t, remote.MessageTypes{remote.WriteV1MessageType}, func(int) int { return tc.status })
			var log retryLog
			tg := newTestRWTarget(t, rc.url(), v1alpha1.RemoteWriteProtocol1, 3, &log)
			err := tg.send(context.Background(), testBatch())
			var te *targetError
			if !errors.As(err, &te) {
				t.Fatalf("send = %v, want a targetError", err)
			}
			if want := "http_" + strconv.Itoa(tc.status); te.reason != want || te.drop != tc.drop {
				t.Errorf("targetError reason %q drop %v, want %q drop %v", te.reason, te.drop, want, tc.drop)
			}
			if attempts, _ := rc.snapshot(); len(attempts) != 1 {
				t.Errorf("%d attempts, want 1: a 4xx is not retried by the client", len(attempts))
			}
			if r := log.get(); len(r) != 0 {
				t.Errorf("onRetry called: %v", r)
			}
		})
	}
}

// TestRemoteWriteV2Unconfirmed: a receiver that answers a 2.0 request with
// 2xx and none of the X-Prometheus-Remote-Write-*-Written headers (a 1.0
// receiver that ignores the content type, such as Prometheus 2.42) wrote
// nothing. client_golang reports it as an error after the one attempt,
// without retrying; send classifies it "protocol", to be retried by the
// next pass and never dropped.
func TestRemoteWriteV2Unconfirmed(t *testing.T) {
	for _, status := range []int{200, 204} {
		t.Run(strconv.Itoa(status), func(t *testing.T) {
			rc := newTestReceiver(t, remote.MessageTypes{remote.WriteV2MessageType}, func(int) int { return status })
			var log retryLog
			tg := newTestRWTarget(t, rc.url(), v1alpha1.RemoteWriteProtocol2, 3, &log)
			err := tg.send(context.Background(), testBatch())
			var te *targetError
			if !errors.As(err, &te) {
				t.Fatalf("send = %v, want a targetError", err)
			}
			if te.reason != "protocol" || te.drop {
				t.Errorf("targetError reason %q drop %v, want protocol, not dropped", te.reason, te.drop)
			}
			if attempts, _ := rc.snapshot(); len(attempts) != 1 {
				t.Errorf("%d attempts, want 1", len(attempts))
			}
			if r := log.get(); len(r) != 0 {
				t.Errorf("onRetry called: %v", r)
			}
		})
	}

	// The same request to a 1.0 target is a success: 1.0 has no headers.
	rc := newTestReceiver(t, remote.MessageTypes{remote.WriteV1MessageType}, func(int) int { return 204 })
	tg := newTestRWTarget(t, rc.url(), v1alpha1.RemoteWriteProtocol1, 3, &retryLog{})
	if err := tg.send(context.Background(), testBatch()); err != nil {
		t.Errorf("1.0 send to a 204 without headers: %v", err)
	}
}

// TestRemoteWriteV2ConfirmedCounts: a 2.0 receiver's written-samples
// headers are compared with the batch; fewer than sent (zero included) is
// a partial write, reported with the number written.
func TestRemoteWriteV2ConfirmedCounts(t *testing.T) {
	sent := len(testBatch().samples)
	for _, tc := range []struct {
		name        string
		written     func(floats, histograms int) (int, int)
		wantWritten int // -1: a plain success
	}{
		{"all", nil, -1},
		{"fewer than sent", func(f, h int) (int, int) { return f - 1, h }, sent - 1},
		{"zero, confirmed by the headers", func(int, int) (int, int) { return 0, 0 }, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rc := newTestReceiver(t, remote.MessageTypes{remote.WriteV2MessageType}, nil)
			rc.written = tc.written
			tg := newTestRWTarget(t, rc.url(), v1alpha1.RemoteWriteProtocol2, 3, &retryLog{})
			err := tg.send(context.Background(), testBatch())
			var pw *partialWrite
			switch {
			case tc.wantWritten < 0 && err != nil:
				t.Errorf("send: %v", err)
			case tc.wantWritten >= 0 && (!errors.As(err, &pw) || pw.written != tc.wantWritten):
				t.Errorf("send = %v, want a partial write of %d", err, tc.wantWritten)
			}
		})
	}
}

// TestRemoteWriteV2ToV1Receiver: a receiver that accepts only 1.0 and checks
// the content type (client_golang's, which Prometheus embeds, without 2.0 in
// its accepted messages) answers 415. That is the target's configuration
// (protocolVersion), not the data, just as a 2xx without headers is.
func TestRemoteWriteV2ToV1Receiver(t *testing.T) {
	rc := newTestReceiver(t, remote.MessageTypes{remote.WriteV1MessageType}, nil)
	tg := newTestRWTarget(t, rc.url(), v1alpha1.RemoteWriteProtocol2, 3, &retryLog{})
	err := tg.send(context.Background(), testBatch())
	var te *targetError
	if !errors.As(err, &te) {
		t.Fatalf("send = %v, want a targetError", err)
	}
	if te.reason != "http_415" || te.drop {
		t.Errorf("targetError reason %q drop %v, want http_415, not dropped", te.reason, te.drop)
	}
}

func TestRemoteWriteNetworkError(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL + "/api/v1/write"
	srv.Close() // nothing listens any more
	var log retryLog
	tg := newTestRWTarget(t, url, v1alpha1.RemoteWriteProtocol1, 1, &log)
	err := tg.send(context.Background(), testBatch())
	var te *targetError
	if !errors.As(err, &te) {
		t.Fatalf("send = %v, want a targetError", err)
	}
	if te.reason != "network" || te.drop {
		t.Errorf("targetError reason %q drop %v, want network, not dropped", te.reason, te.drop)
	}
	if got := log.get(); !slices.Equal(got, []string{"network"}) {
		t.Errorf("onRetry reasons %q, want [network]", got)
	}
}

// TestRemoteWriteZeroRetries: retries 0 (which the Caddyfile accepts as
// "a non-negative integer") must mean one attempt.
func TestRemoteWriteZeroRetries(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var mu sync.Mutex
	attempts := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		attempts++
		if attempts > 1 {
			cancel() // stop a retry loop rather than hang the test
		}
		mu.Unlock()
		http.Error(w, "down", http.StatusInternalServerError)
	}))
	defer srv.Close()
	tg := newTestRWTarget(t, srv.URL, v1alpha1.RemoteWriteProtocol1, 0, &retryLog{})
	err := tg.send(ctx, testBatch())
	mu.Lock()
	defer mu.Unlock()
	if attempts != 1 {
		t.Errorf("%d attempts with retries 0, want 1", attempts)
	}
	var te *targetError
	if !errors.As(err, &te) || te.reason != "http_500" {
		t.Errorf("send = %v, want a targetError http_500", err)
	}
}

// TestRemoteWriteCanceled: stopping a copier mid-request is not a failure
// of the target; classify passes context.Canceled on as it is.
func TestRemoteWriteCanceled(t *testing.T) {
	arrived := make(chan struct{})
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Read the body: only then does the server notice the client going.
		_, _ = io.Copy(io.Discard, r.Body)
		close(arrived)
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	defer srv.Close()
	defer close(release)
	ctx, cancel := context.WithCancel(context.Background())
	tg := newTestRWTarget(t, srv.URL, v1alpha1.RemoteWriteProtocol1, 3, &retryLog{})
	go func() {
		<-arrived
		cancel()
	}()
	err := tg.send(ctx, testBatch())
	if !errors.Is(err, context.Canceled) {
		t.Errorf("send = %T %v, want context.Canceled", err, err)
	}
	var te *targetError
	if errors.As(err, &te) {
		t.Errorf("cancelled send classified as a target failure: reason %q", te.reason)
	}
}

// TestRemoteWriteCanceledBeforeSend: a context cancelled before the
// request is not a failure of the target either.
func TestRemoteWriteCanceledBeforeSend(t *testing.T) {
	var mu sync.Mutex
	attempts := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		attempts++
		mu.Unlock()
	}))
	defer srv.Close()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	tg := newTestRWTarget(t, srv.URL, v1alpha1.RemoteWriteProtocol1, 3, &retryLog{})
	err := tg.send(ctx, testBatch())
	if err == nil {
		t.Fatal("send with a cancelled context succeeded")
	}
	mu.Lock()
	defer mu.Unlock()
	if attempts != 0 {
		t.Errorf("%d requests reached the server", attempts)
	}
}

// TestRemoteWriteErrorBodyBounded: a target's error answer ends up in the
// error (and so in logs and the admin status). A target may be hostile —
// a tenant runs the Services of its own namespace — so what is kept of the
// answer must be bounded, as the Pushgateway target bounds it to 1 KiB.
func TestRemoteWriteErrorBodyBounded(t *testing.T) {
	big := bytes.Repeat([]byte("x"), 4<<20)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusBadRequest)
		_, _ = w.Write(big)
	}))
	defer srv.Close()
	tg := newTestRWTarget(t, srv.URL, v1alpha1.RemoteWriteProtocol1, 1, &retryLog{})
	err := tg.send(context.Background(), testBatch())
	if err == nil {
		t.Fatal("send succeeded")
	}
	if n := len(err.Error()); n > 64<<10 {
		t.Errorf("error text is %d bytes: the target's whole answer", n)
	}
}

// A series that changes between floats and histograms within a batch goes
// out as one time series per stretch, in time order: a receiver appends a
// time series' floats before its histograms.
func TestEncodeAlternatingTypes(t *testing.T) {
	b := &batch{
		series: []labels.Labels{rwA},
		samples: []sample{
			{t: 10, v: 1}, {t: 20, hist: 1}, {t: 30, v: 3}, {t: 40, v: 4}, {t: 50, hist: 2},
		},
		hists: []hist{{h: rwH1}, {fh: rwFH1}},
	}
	var got []string
	for _, ts := range encodeV1(b).Timeseries {
		var ts1 []int64
		for _, s := range ts.Samples {
			ts1 = append(ts1, s.Timestamp)
		}
		for _, h := range ts.Histograms {
			ts1 = append(ts1, h.Timestamp)
		}
		got = append(got, fmt.Sprintf("%d floats %d histograms %v", len(ts.Samples), len(ts.Histograms), ts1))
	}
	want := []string{"1 floats 0 histograms [10]", "0 floats 1 histograms [20]", "2 floats 0 histograms [30 40]", "0 floats 1 histograms [50]"}
	if !slices.Equal(got, want) {
		t.Errorf("1.0 time series:\n got %q\nwant %q", got, want)
	}
	if n := len(encodeV2(b).Timeseries); n != 4 {
		t.Errorf("2.0: %d time series, want 4", n)
	}
}

// A request encoded in buffers used before holds only its own batch.
func TestEncodeV1Reused(t *testing.T) {
	var v v1Buffers
	big := benchBatch(50, 4)
	v.encode(big)
	v.reset()
	b := testBatch()
	if got, want := linesV1(t, v.encode(b)), linesV1(t, encodeV1(b)); !slices.Equal(got, want) {
		t.Errorf("reused buffers:\n got %q\nwant %q", got, want)
	}
}

// benchBatch is a batch as the benchmark's copier sends: n series of about
// 100 bytes of labels, k samples each, series by series.
func benchBatch(n, k int) *batch {
	b := &batch{}
	for i := range n {
		b.series = append(b.series, labels.FromStrings("__name__", fmt.Sprintf("bench_metric_%02d", i%20), "namespace", "bench",
			"instance", fmt.Sprintf("10.0.%d.%d:9100", i/250%256, i%250), "job", "node", "device", fmt.Sprintf("eth%d", i%4),
			"mode", "user", "cpu", fmt.Sprint(i%8)))
		for j := range k {
			b.samples = append(b.samples, sample{t: int64(j+1) * 15000, v: float64(i*j) + 0.5, series: int32(i)})
		}
	}
	return b
}

// BenchmarkEncodeV1 encodes and marshals a batch of 2000 samples (500
// series of 4), in fresh buffers and in reused ones.
func BenchmarkEncodeV1(b *testing.B) {
	bt := benchBatch(500, 4)
	var out []byte
	marshal := func(req *prompb.WriteRequest) {
		out = slices.Grow(out[:0], req.Size())[:req.Size()]
		if _, err := req.MarshalToSizedBuffer(out); err != nil {
			b.Fatal(err)
		}
	}
	b.Run("fresh", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			marshal(encodeV1(bt))
		}
	})
	b.Run("reused", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			v := v1Pool.Get().(*v1Buffers)
			marshal(v.encode(bt))
			v.reset()
			v1Pool.Put(v)
		}
	})
}
