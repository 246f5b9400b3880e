package remotewrite

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/prometheus/model/labels"
)

// batch is samples a batchTarget takes in one request, in time order.
type batch struct {
	// series are the labels the target stores, by the samples' series index.
	series  []labels.Labels
	samples []sample
	hists   []hist // the samples' histograms, by sample.hist
}

// batchTarget stores samples with their timestamps: remote write.
type batchTarget interface {
	send(ctx context.Context, b *batch) error
}

// snapshotTarget holds only the current value of each series, replaced as a
// whole on every push: the Pushgateway.
type snapshotTarget interface {
	push(ctx context.Context, series []labels.Labels, values []float64) error
}

// targetError is a failed write, classified by what the copier does next.
type targetError struct {
	// reason is the metric label and the status's short cause, e.g.
	// "http_400", "http_503", "network".
	reason string
	// drop: the target refused these samples for good (a 4xx that is not
	// about access). They are counted as dropped and copying goes on; every
	// other failure is retried from the same position on the next pass.
	drop bool
	err  error
}

func (e *targetError) Error() string { return e.err.Error() }
func (e *targetError) Unwrap() error { return e.err }

// classify turns the outcome of a write into a targetError; status is the
// HTTP status of the last attempt, 0 if none arrived.
func classify(status int, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, context.Canceled) {
		return err
	}
	te := &targetError{reason: reasonOf(status), err: err}
	switch {
	case status == 0, status/100 == 2:
	case status == http.StatusTooManyRequests, status/100 == 5:
		// Retried with backoff by the client already; the next pass retries again.
	case status == http.StatusUnauthorized, status == http.StatusForbidden,
		status == http.StatusNotFound, status == http.StatusMethodNotAllowed,
		status == http.StatusProxyAuthRequired, status == http.StatusUnsupportedMediaType,
		status == http.StatusRequestEntityTooLarge:
		// The target is misconfigured (credentials, path, a protocol version
		// it does not take, batches too large for it), not the data:
		// dropping would lose everything until it is fixed. Wait instead.
	case status/100 == 4:
		te.drop = true
	}
	return te
}

// reasonOf names the cause of a failed attempt that got status.
func reasonOf(status int) string {
	switch {
	case status == 0:
		return "network"
	case status/100 == 2:
		// A 2xx the client still calls a failure: a remote-write 2.0 request
		// that a 1.0 receiver accepted without writing anything.
		return "protocol"
	}
	switch status {
	case 400, 401, 403, 404, 405, 407, 409, 413, 415, 422, 429, 500, 502, 503, 504:
		return fmt.Sprintf("http_%d", status)
	}
	// Other codes are the target's choice: fold them, so that a hostile
	// target cannot grow the metrics' reason label without bound.
	return fmt.Sprintf("http_%dxx", status/100)
}

// statusKey is the context key of the *int a statusRecorder writes to.
type statusKey struct{}

// statusRecorder notes the HTTP status of each response in the request's
// context, so that a client that reports failures as text can still be
// classified by status.
type statusRecorder struct{ next http.RoundTripper }

func (s statusRecorder) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := s.next.RoundTrip(r)
	if resp != nil {
		// The client reads every answer whole (an error's into its error
		// text, for logs and the status): a hostile target must not fill
		// memory or logs. A success's body carries nothing we use.
		limit := int64(maxErrorBody)
		if resp.StatusCode/100 == 2 {
			limit = maxSuccessBody
		}
		resp.Body = limitedBody{Reader: io.LimitReader(resp.Body, limit), Closer: resp.Body}
		// The client waits Retry-After on top of its backoff, uncapped; a
		// target must not park a copier (and its slot) for a year.
		if ra := resp.Header.Get("Retry-After"); ra != "" {
			if d, err := strconv.Atoi(ra); err != nil || time.Duration(d)*time.Second > maxRetryAfter {
				resp.Header.Set("Retry-After", strconv.Itoa(int(maxRetryAfter/time.Second)))
			}
		}
	}
	if p, ok := r.Context().Value(statusKey{}).(*int); ok {
		*p = 0
		if resp != nil {
			*p = resp.StatusCode
		}
	}
	return resp, err
}

// How much of an answer is read, and the longest Retry-After honoured.
const (
	maxErrorBody   = 1024
	maxSuccessBody = 64 << 10
	maxRetryAfter  = 30 * time.Second
)

type limitedBody struct {
	io.Reader
	io.Closer
}

// withStatus returns a context whose writes record their status in *status.
func withStatus(ctx context.Context, status *int) context.Context {
	return context.WithValue(ctx, statusKey{}, status)
}
