package remotewrite

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/exp/api/remote"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"

	"github.com/prom-tenant/caddy-prom-tenant/tenancy/v1alpha1"
)

// remoteWriteTarget sends batches by Prometheus remote write, 1.0 or 2.0,
// through client_golang's remote API client (retries with backoff on 5xx and
// 429, honouring Retry-After).
type remoteWriteTarget struct {
	api     *remote.API
	msgType remote.WriteMessageType
	onRetry func(reason string, err error)
}

func newRemoteWriteTarget(url, protocol string, client *http.Client, retries int, onRetry func(reason string, err error)) (*remoteWriteTarget, error) {
	msgType := remote.WriteV1MessageType
	if protocol == v1alpha1.RemoteWriteProtocol2 {
		msgType = remote.WriteV2MessageType
	}
	maxRetries := retries
	if retries == 0 {
		maxRetries = -1 // client_golang reads 0 as "retry forever"
	}
	api, err := remote.NewAPI(url,
		remote.WithAPIHTTPClient(client),
		remote.WithAPIPath(""), // url is the whole endpoint
		remote.WithAPIBackoff(remote.BackoffConfig{Min: time.Second, Max: 30 * time.Second, MaxRetries: maxRetries}),
	)
	if err != nil {
		return nil, err
	}
	return &remoteWriteTarget{api: api, msgType: msgType, onRetry: onRetry}, nil
}

func (t *remoteWriteTarget) send(ctx context.Context, b *batch) error {
	var msg any
	if t.msgType == remote.WriteV2MessageType {
		msg = encodeV2(b)
	} else {
		buf := v1Pool.Get().(*v1Buffers)
		defer v1Pool.Put(buf)
		msg = buf.encode(b)
		defer buf.reset() // Write has marshalled it
	}
	var status int
	stats, err := t.api.Write(withStatus(ctx, &status), t.msgType, msg, remote.WithWriteRetryCallback(func(err error) {
		if t.onRetry != nil {
			t.onRetry(reasonOf(status), err)
		}
	}))
	if err != nil && ctx.Err() != nil {
		// Stopping, not a failure of the target. (client_golang's retry
		// error does not unwrap to the context's.)
		return ctx.Err()
	}
	// A 2.0 receiver says how many samples it wrote (client_golang fails a
	// success without the headers); fewer than sent is a partial write,
	// which it will not take again.
	if err == nil && t.msgType == remote.WriteV2MessageType && stats.AllSamples() < len(b.samples) {
		return &partialWrite{written: stats.AllSamples()}
	}
	return classify(status, err)
}

// partialWrite is a success in which the target wrote only some samples.
type partialWrite struct{ written int }

func (e *partialWrite) Error() string {
	return fmt.Sprintf("the target wrote %d of the samples sent (remote write 2.0 response headers)", e.written)
}

// seriesRun is samples of one series in a batch, all floats or all
// histograms: b.samples[pos[i]] for i in [start, end).
type seriesRun struct{ series, start, end int }

// groupBySeries returns the runs of b's series, in order of first
// appearance, each series' samples together and in order, and the
// positions the runs index. A series' samples are cut into several runs
// where they change between floats and histograms: a time series of a
// request holds its floats and its histograms apart, and a receiver appends
// the floats first. A series-major batch (what a copier sends) is its own
// order, and pos is nil: position i is i. The runs are appended to runs.
func groupBySeries(b *batch, runs []seriesRun) (_ []seriesRun, pos []int) {
	major := true
	for i := 1; i < len(b.samples) && major; i++ {
		major = b.samples[i].series >= b.samples[i-1].series
	}
	if !major {
		var order []int
		positions := make(map[int][]int)
		for i, s := range b.samples {
			si := int(s.series)
			if _, ok := positions[si]; !ok {
				order = append(order, si)
			}
			positions[si] = append(positions[si], i)
		}
		pos = make([]int, 0, len(b.samples))
		for _, si := range order {
			pos = append(pos, positions[si]...)
		}
	}
	for i := range b.samples {
		s := at(b, pos, i)
		if n := len(runs); n > 0 && runs[n-1].series == int(s.series) && (at(b, pos, i-1).hist == 0) == (s.hist == 0) {
			runs[n-1].end = i + 1
			continue
		}
		runs = append(runs, seriesRun{series: int(s.series), start: i, end: i + 1})
	}
	return runs, pos
}

// hist is the histogram of s, zero for a float.
func (b *batch) hist(s *sample) hist {
	if s.hist == 0 {
		return hist{}
	}
	return b.hists[s.hist-1]
}

// at is the sample at position i of the runs.
func at(b *batch, pos []int, i int) *sample {
	if pos != nil {
		i = pos[i]
	}
	return &b.samples[i]
}

// encodeV1 builds a 1.0 request.
func encodeV1(b *batch) *prompb.WriteRequest { return new(v1Buffers).encode(b) }

// v1Buffers hold a 1.0 request's parts. Labels and samples of all series are
// cut from one buffer each (a batch is thousands of series), and the
// buffers are used again for the next batch once a request is marshalled.
type v1Buffers struct {
	req     prompb.WriteRequest
	labels  []prompb.Label
	samples []prompb.Sample
	runs    []seriesRun
}

var v1Pool = sync.Pool{New: func() any { return new(v1Buffers) }}

// reset empties the buffers, dropping what they point to (labels of the
// last batch's series).
func (v *v1Buffers) reset() {
	clear(v.req.Timeseries)
	clear(v.labels)
	v.req.Timeseries, v.labels, v.samples = v.req.Timeseries[:0], v.labels[:0], v.samples[:0]
}

// encode builds b's request in v; the request is valid until v is reset.
func (v *v1Buffers) encode(b *batch) *prompb.WriteRequest {
	runs, pos := groupBySeries(b, v.runs[:0])
	v.runs = runs
	nLabels := 0
	for _, r := range runs {
		nLabels += b.series[r.series].Len()
	}
	labelBuf := slices.Grow(v.labels[:0], nLabels)
	sampleBuf := slices.Grow(v.samples[:0], len(b.samples))
	req := &v.req
	req.Timeseries = slices.Grow(req.Timeseries[:0], len(runs))
	for _, r := range runs {
		l0 := len(labelBuf)
		b.series[r.series].Range(func(l labels.Label) {
			labelBuf = append(labelBuf, prompb.Label{Name: l.Name, Value: l.Value})
		})
		ts := prompb.TimeSeries{Labels: labelBuf[l0:len(labelBuf):len(labelBuf)]}
		s0 := len(sampleBuf)
		for i := r.start; i < r.end; i++ {
			s := at(b, pos, i)
			switch h := b.hist(s); {
			case h.h != nil:
				ts.Histograms = append(ts.Histograms, prompb.FromIntHistogram(s.t, h.h))
			case h.fh != nil:
				ts.Histograms = append(ts.Histograms, prompb.FromFloatHistogram(s.t, h.fh))
			default:
				sampleBuf = append(sampleBuf, prompb.Sample{Timestamp: s.t, Value: s.v})
			}
		}
		if len(sampleBuf) > s0 {
			ts.Samples = sampleBuf[s0:len(sampleBuf):len(sampleBuf)]
		}
		req.Timeseries = append(req.Timeseries, ts)
	}
	v.labels, v.samples = labelBuf, sampleBuf
	return req
}

func encodeV2(b *batch) *writev2.Request {
	runs, pos := groupBySeries(b, nil)
	symbols := writev2.NewSymbolTable()
	nLabels := 0
	for _, r := range runs {
		nLabels += b.series[r.series].Len()
	}
	refBuf := make([]uint32, 0, 2*nLabels) // a name and a value each
	sampleBuf := make([]writev2.Sample, 0, len(b.samples))
	req := &writev2.Request{Timeseries: make([]writev2.TimeSeries, 0, len(runs))}
	for _, r := range runs {
		refs := symbols.SymbolizeLabels(b.series[r.series], refBuf[len(refBuf):])
		refBuf = refs[len(refs):]
		ts := writev2.TimeSeries{LabelsRefs: refs[:len(refs):len(refs)]}
		s0 := len(sampleBuf)
		for i := r.start; i < r.end; i++ {
			s := at(b, pos, i)
			switch h := b.hist(s); {
			case h.h != nil:
				ts.Histograms = append(ts.Histograms, writev2.FromIntHistogram(0, s.t, h.h))
			case h.fh != nil:
				ts.Histograms = append(ts.Histograms, writev2.FromFloatHistogram(0, s.t, h.fh))
			default:
				sampleBuf = append(sampleBuf, writev2.Sample{Timestamp: s.t, Value: s.v})
			}
		}
		if len(sampleBuf) > s0 {
			ts.Samples = sampleBuf[s0:len(sampleBuf):len(sampleBuf)]
		}
		req.Timeseries = append(req.Timeseries, ts)
	}
	req.Symbols = symbols.Symbols()
	return req
}
