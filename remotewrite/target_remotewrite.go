package remotewrite

import (
	"context"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/exp/api/remote"
	"github.com/prometheus/prometheus/prompb"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"

	"github.com/prom-tenant/caddy-prom-tenant/tenancy"
)

// remoteWriteTarget sends batches by Prometheus remote write, 1.0 or 2.0,
// through client_golang's remote API client (retries with backoff on 5xx and
// 429, honouring Retry-After).
type remoteWriteTarget struct {
	api     *remote.API
	msgType remote.WriteMessageType
	onRetry func(reason string)
}

func newRemoteWriteTarget(url, protocol string, client *http.Client, retries int, onRetry func(reason string)) (*remoteWriteTarget, error) {
	msgType := remote.WriteV1MessageType
	if protocol == tenancy.RemoteWriteProtocol2 {
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
		msg = encodeV1(b)
	}
	var status int
	_, err := t.api.Write(withStatus(ctx, &status), t.msgType, msg, remote.WithWriteRetryCallback(func(error) {
		if t.onRetry != nil {
			t.onRetry(reasonOf(status))
		}
	}))
	if err != nil && ctx.Err() != nil {
		// Stopping, not a failure of the target. (client_golang's retry
		// error does not unwrap to the context's.)
		return ctx.Err()
	}
	return classify(status, err)
}

// groupBySeries returns, in order of first appearance, the series of b's
// samples and, for each, its samples' positions in b.samples.
func groupBySeries(b *batch) (order []int, positions map[int][]int) {
	positions = make(map[int][]int)
	for i, s := range b.samples {
		if _, ok := positions[s.series]; !ok {
			order = append(order, s.series)
		}
		positions[s.series] = append(positions[s.series], i)
	}
	return order, positions
}

func encodeV1(b *batch) *prompb.WriteRequest {
	order, positions := groupBySeries(b)
	req := &prompb.WriteRequest{Timeseries: make([]prompb.TimeSeries, 0, len(order))}
	for _, si := range order {
		ts := prompb.TimeSeries{Labels: prompb.FromLabels(b.series[si], nil)}
		for _, i := range positions[si] {
			s := b.samples[i]
			switch {
			case s.h != nil:
				ts.Histograms = append(ts.Histograms, prompb.FromIntHistogram(s.t, s.h))
			case s.fh != nil:
				ts.Histograms = append(ts.Histograms, prompb.FromFloatHistogram(s.t, s.fh))
			default:
				ts.Samples = append(ts.Samples, prompb.Sample{Timestamp: s.t, Value: s.v})
			}
		}
		req.Timeseries = append(req.Timeseries, ts)
	}
	return req
}

func encodeV2(b *batch) *writev2.Request {
	order, positions := groupBySeries(b)
	symbols := writev2.NewSymbolTable()
	req := &writev2.Request{Timeseries: make([]writev2.TimeSeries, 0, len(order))}
	for _, si := range order {
		ts := writev2.TimeSeries{LabelsRefs: symbols.SymbolizeLabels(b.series[si], nil)}
		for _, i := range positions[si] {
			s := b.samples[i]
			switch {
			case s.h != nil:
				ts.Histograms = append(ts.Histograms, writev2.FromIntHistogram(0, s.t, s.h))
			case s.fh != nil:
				ts.Histograms = append(ts.Histograms, writev2.FromFloatHistogram(0, s.t, s.fh))
			default:
				ts.Samples = append(ts.Samples, writev2.Sample{Timestamp: s.t, Value: s.v})
			}
		}
		req.Timeseries = append(req.Timeseries, ts)
	}
	req.Symbols = symbols.Symbols()
	return req
}
