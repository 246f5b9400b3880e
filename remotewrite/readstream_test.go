package remotewrite

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/config"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/storage/remote"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/prometheus/prometheus/tsdb/chunks"
	"github.com/prometheus/prometheus/tsdb/tsdbutil"
)

// streamedAnswer is the body Prometheus's own remote-read handler streams
// for a read of every series in [from, to].
func streamedAnswer(tb testing.TB, series []storage.Series, from, to int64) []byte {
	tb.Helper()
	h := remote.NewReadHandler(nil, nil, testQueryable{series}, func() config.Config { return config.Config{} }, 0, 1, 1<<20)
	q, err := remote.ToQuery(from, to, []*labels.Matcher{labels.MustNewMatcher(labels.MatchRegexp, labels.MetricName, ".+")}, nil)
	if err != nil {
		tb.Fatal(err)
	}
	data, err := (&prompb.ReadRequest{
		Queries:               []*prompb.Query{q},
		AcceptedResponseTypes: []prompb.ReadRequest_ResponseType{prompb.ReadRequest_STREAMED_XOR_CHUNKS},
	}).Marshal()
	if err != nil {
		tb.Fatal(err)
	}
	req := httptest.NewRequest(http.MethodPost, "/api/v1/read", bytes.NewReader(snappy.Encode(nil, data)))
	req.Header.Set("Content-Encoding", "snappy")
	req.Header.Set("X-Prometheus-Remote-Read-Version", "0.1.0")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusOK || !strings.HasPrefix(rec.Header().Get("Content-Type"), streamedContentType) {
		tb.Fatalf("read handler: %d %s: %s", rec.Code, rec.Header().Get("Content-Type"), rec.Body)
	}
	return rec.Body.Bytes()
}

// libraryFrames decodes body with Prometheus's own client code.
func libraryFrames(body []byte, from, to int64) storage.SeriesSet {
	return remote.NewChunkedSeriesSet(remote.NewChunkedReader(bytes.NewReader(body), chunkedReadLimit, nil),
		io.NopCloser(bytes.NewReader(nil)), from, to, func(error) {})
}

// ourFrames decodes body with frameSet.
func ourFrames(body []byte) storage.SeriesSet {
	return &frameSet{r: remote.NewChunkedReader(bytes.NewReader(body), chunkedReadLimit, nil),
		body: io.NopCloser(bytes.NewReader(nil)), cancel: func() {}}
}

// readAll describes every series of ss and its samples in [from, to]. It
// reads all series before their samples: a series must stay whole while
// the set reads on (joinedParts reads one ahead).
func readAll(t *testing.T, ss storage.SeriesSet, from, to int64) []string {
	t.Helper()
	var all []storage.Series
	for ss.Next() {
		all = append(all, ss.At())
	}
	if err := ss.Err(); err != nil {
		t.Fatal(err)
	}
	var out []string
	var it chunkenc.Iterator
	for _, s := range all {
		out = append(out, s.Labels().String())
		it = s.Iterator(it)
		for vt := it.Next(); vt != chunkenc.ValNone; vt = it.Next() {
			var line string
			switch vt {
			case chunkenc.ValFloat:
				ts, v := it.At()
				line = fmt.Sprintf("%d %x", ts, v)
			case chunkenc.ValHistogram:
				ts, h := it.AtHistogram(nil)
				line = fmt.Sprintf("%d h%s", ts, h)
			case chunkenc.ValFloatHistogram:
				ts, fh := it.AtFloatHistogram(nil)
				line = fmt.Sprintf("%d fh%s", ts, fh)
			}
			if ts := it.AtT(); ts >= from && ts <= to {
				out = append(out, line)
			}
		}
		if err := it.Err(); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// The streamed answer, decoded by frameSet, holds exactly what Prometheus's
// own client reads from it: every kind of chunk, series over several chunks
// and over several frames, labels of every size.
func TestReadStreamedAsLibrary(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	var series []storage.Series
	floats := func(n int, step int64) []chunks.Sample {
		out := make([]chunks.Sample, n)
		for i := range out {
			out[i] = testSample{t: int64(i) * step, f: rng.NormFloat64()}
		}
		return out
	}
	series = append(series,
		testSeries(labels.FromStrings("__name__", "over_chunks", "namespace", "a"), floats(1000, 1)), // 9 chunks
		testSeries(labels.FromStrings("__name__", "over_frames", "namespace", "a"), floats(150000, 1)),
		testSeries(labels.FromStrings("__name__", "one", "namespace", "a"), floats(1, 1)),
	)
	var hs, fhs []chunks.Sample
	for i, h := range tsdbutil.GenerateTestHistograms(300) {
		hs = append(hs, testSample{t: int64(i) * 3, h: h})
	}
	for i, fh := range tsdbutil.GenerateTestFloatHistograms(300) {
		fhs = append(fhs, testSample{t: int64(i) * 3, fh: fh})
	}
	series = append(series,
		testSeries(labels.FromStrings("__name__", "hist", "namespace", "a"), hs),
		testSeries(labels.FromStrings("__name__", "fhist", "namespace", "a"), fhs),
	)
	for i := range 200 {
		b := labels.NewScratchBuilder(0)
		b.Add("__name__", "many")
		b.Add("i", fmt.Sprint(i))
		for j := range i % 30 {
			b.Add(fmt.Sprintf("l%02d", j), strings.Repeat("v", rng.IntN(300)))
		}
		b.Sort()
		series = append(series, testSeries(b.Labels(), floats(1+i%7, 100)))
	}
	for _, r := range [][2]int64{{0, 1 << 20}, {50, 250}, {300, 300}} {
		body := streamedAnswer(t, series, r[0], r[1])
		want := readAll(t, libraryFrames(body, r[0], r[1]), r[0], r[1])
		got := readAll(t, ourFrames(body), r[0], r[1])
		if len(want) < 200 {
			t.Fatalf("range %v: the library read %d lines: the case proves little", r, len(want))
		}
		if len(got) != len(want) {
			t.Fatalf("range %v: read %d lines, the library %d", r, len(got), len(want))
		}
		for i := range want {
			if got[i] != want[i] {
				t.Fatalf("range %v, line %d:\n got %.200s\nwant %.200s", r, i, got[i], want[i])
			}
		}
	}
}

// A source's bad answers are errors naming what was wrong, never a window.
func TestReadStreamedRefusals(t *testing.T) {
	frame := func(cs prompb.ChunkedSeries) []byte {
		b, err := (&prompb.ChunkedReadResponse{ChunkedSeries: []*prompb.ChunkedSeries{&cs}}).Marshal()
		if err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		if _, err := remote.NewChunkedWriter(&buf, nopFlusher{}).Write(b); err != nil {
			t.Fatal(err)
		}
		return buf.Bytes()
	}
	lbls := []prompb.Label{{Name: "__name__", Value: "m"}, {Name: "namespace", Value: "a"}}
	goodChunk := chunkenc.NewXORChunk()
	app, _ := goodChunk.Appender()
	app.Append(0, 1, 1)
	for _, tc := range []struct {
		name        string
		status      int
		contentType string
		body        []byte
		want        string
	}{
		{"status", http.StatusServiceUnavailable, "text/plain", []byte("not ready\n"), "returned http status 503 Service Unavailable: not ready"},
		{"sampled answer", http.StatusOK, "application/x-protobuf", nil, `unsupported content type "application/x-protobuf"`},
		{"chunk encoding", http.StatusOK, streamedContentType,
			frame(prompb.ChunkedSeries{Labels: lbls, Chunks: []prompb.Chunk{{Type: 9, Data: goodChunk.Bytes()}}}), "a chunk of unknown encoding 9"},
		{"malformed frame", http.StatusOK, streamedContentType, func() []byte {
			var buf bytes.Buffer
			_, _ = remote.NewChunkedWriter(&buf, nopFlusher{}).Write([]byte{0x0a, 0x7f, 0x01})
			return buf.Bytes()
		}(), "malformed frame"},
		{"checksum", http.StatusOK, streamedContentType, func() []byte {
			b := frame(prompb.ChunkedSeries{Labels: lbls, Chunks: []prompb.Chunk{{Type: 1, Data: goodChunk.Bytes()}}})
			b[len(b)-1] ^= 1
			return b
		}(), "checksum mismatch"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				w.Header().Set("Content-Type", tc.contentType)
				w.WriteHeader(tc.status)
				_, _ = w.Write(tc.body)
			}))
			defer srv.Close()
			c := &readClient{url: srv.URL, client: srv.Client(), timeout: 10 * time.Second}
			q, err := remote.ToQuery(0, 10, []*labels.Matcher{labels.MustNewMatcher(labels.MatchEqual, "namespace", "a")}, nil)
			if err != nil {
				t.Fatal(err)
			}
			ss, err := c.Read(context.Background(), q)
			if err == nil {
				for ss.Next() {
					t.Errorf("read a series %s", ss.At().Labels())
				}
				err = ss.Err()
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
	// The good frame is read: the refusals above are about what they change.
	body := frame(prompb.ChunkedSeries{Labels: lbls, Chunks: []prompb.Chunk{{Type: 1, Data: goodChunk.Bytes()}}})
	if got := readAll(t, ourFrames(body), 0, 10); len(got) != 2 {
		t.Errorf("the good frame reads as %q", got)
	}
}

type nopFlusher struct{}

func (nopFlusher) Flush() {}

// benchAnswer is a streamed answer like the benchmark's (scripts/
// bench-remotewrite.sh) over a 1m window: n series of about 100 bytes of
// labels, 4 samples at 15s steps each.
func benchAnswer(b *testing.B, n int) []byte {
	b.Helper()
	series := make([]storage.Series, n)
	for i := range series {
		lset := labels.FromStrings("__name__", fmt.Sprintf("bench_metric_%02d", i%20), "namespace", "bench",
			"instance", fmt.Sprintf("10.0.%d.%d:9100", i/250%256, i%250), "job", "node", "device", fmt.Sprintf("eth%d", i%4),
			"mode", "user", "cpu", fmt.Sprint(i%8))
		samples := make([]chunks.Sample, 4)
		for j := range samples {
			samples[j] = testSample{t: int64(j+1) * 15000, f: float64(i*j) + 0.5}
		}
		series[i] = testSeries(lset, samples)
	}
	return streamedAnswer(b, series, 1, 60000)
}

// BenchmarkReadWindow decodes a window's streamed answer and collects it,
// as a pass does, with Prometheus's client code and with frameSet.
func BenchmarkReadWindow(b *testing.B) {
	const n = 10000
	body := benchAnswer(b, n)
	p := testPolicy(b, `{namespace="bench"}`)
	for _, tc := range []struct {
		name string
		set  func() storage.SeriesSet
	}{
		{"library", func() storage.SeriesSet { return libraryFrames(body, 1, 60000) }},
		{"frames", func() storage.SeriesSet { return ourFrames(body) }},
	} {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				w, err := collect(&joinedParts{SeriesSet: tc.set()}, p, progress{}, 1, 60000, 1<<20, false)
				if err != nil || len(w.samples) != 4*n {
					b.Fatal(err, len(w.samples))
				}
				w.release()
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*4*n), "ns/sample")
		})
	}
}
