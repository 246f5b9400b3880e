package promtenant

import (
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sync"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/dustin/go-humanize"

	"github.com/prom-tenant/caddy-prom-tenant/internal/promapi"
)

// subrequest sends a request for path with form through next (so it takes
// the same upstreams, health checks and transport as the tenant's request)
// and hands the "data" of a successful Prometheus API answer to decode while
// the answer streams in: it is never held whole. At most max bytes of it are
// read; past that the sub-request is cancelled and the tenant gets a refusal
// naming max_metadata_response.
func (h *Handler) subrequest(r *http.Request, method, path string, form url.Values, next caddyhttp.Handler, max int64, decode func(*json.Decoder) error) error {
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	sub := r.Clone(ctx)
	sub.Method = method
	rebuild(sub, path, form)
	sub.Header.Del("Accept-Encoding")

	pr, pw := io.Pipe()
	w := &pipeResponse{header: http.Header{}, body: pw, ready: make(chan struct{})}
	done := make(chan error, 1)
	go func() {
		var err error
		defer func() {
			// reverse_proxy panics with http.ErrAbortHandler when a write
			// fails mid-answer, as when this reader stops at the cap. Here
			// that is an error of the sub-request, not of the server.
			if v := recover(); v != nil {
				err = fmt.Errorf("sub-request %s aborted: %v", path, v)
			}
			w.start(http.StatusOK) // nothing written: what net/http would answer
			_ = pw.CloseWithError(err)
			done <- err
		}()
		err = next.ServeHTTP(w, sub)
	}()
	<-w.ready
	var err error
	if w.status >= 400 {
		// An error answer is read as a forwarded one's (readUpstreamError),
		// and the tenant gets the upstream's status and error type.
		body, _ := io.ReadAll(io.LimitReader(pr, maxUpstreamErrorBody))
		err = upstreamErrorRefusal(path, w.status, w.header, body)
	} else {
		err = readAnswer(pr, w.status, w.header, path, max, decode)
	}
	if err == nil {
		// Read what follows the JSON value (a newline) up to the cap, so
		// that a complete answer is never cut off.
		_, _ = io.Copy(io.Discard, &cappedReader{r: pr, n: max})
	}
	// Stop the upstream's copy if it is still writing: we read no more.
	_ = pr.CloseWithError(errStopped)
	cancel()
	nextErr := <-done

	var ae *promapi.Error
	switch {
	case err == nil:
		return nil
	case errors.As(err, &ae):
		return ae
	case nextErr != nil && !errors.Is(nextErr, errStopped):
		return nextErr // the upstream's failure, as for a forwarded request
	default:
		return promapi.Refuse(promapi.UpstreamFailed, "upstream %s answered %d with no valid JSON: %v", path, w.status, err)
	}
}

// upstreamErrorRefusal is the refusal for a sub-request's error answer:
// the upstream's status and error type, its error or text named by path.
func upstreamErrorRefusal(path string, status int, h http.Header, body []byte) *promapi.Error {
	ue := readUpstreamError(status, h, body)
	msg := fmt.Sprintf("upstream %s answered %d", path, status)
	if ue.text != "" {
		msg += ": " + ue.text
	}
	e := promapi.Refuse(promapi.UpstreamFailed, "%s", msg)
	e.Status, e.Type = status, ue.errorType
	return e
}

// errStopped ends a sub-request whose answer is no longer read.
var errStopped = errors.New("sub-request answer no longer read")

// readAnswer reads a Prometheus API envelope from body, handing "data" to
// decode, and fails on an error answer with the upstream's message.
func readAnswer(body io.Reader, status int, header http.Header, path string, max int64, decode func(*json.Decoder) error) error {
	var in io.Reader = &cappedReader{r: body, n: max}
	if header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(in)
		if err != nil {
			return tooLarge(err, path, max)
		}
		// The cap bounds the decompressed answer too: that is what is decoded.
		in = &cappedReader{r: zr, n: max}
	}
	dec := json.NewDecoder(in)
	var env struct{ status, errorType, error string }
	err := walkObject(dec, func(key string) error {
		switch key {
		case "status":
			return dec.Decode(&env.status)
		case "errorType":
			return dec.Decode(&env.errorType)
		case "error":
			return dec.Decode(&env.error)
		case "data":
			if status == http.StatusOK {
				return decode(dec)
			}
		}
		return skipValue(dec)
	})
	if err != nil {
		var de *dataError
		if errors.As(err, &de) {
			return promapi.Refuse(promapi.UpstreamFailed, "upstream %s: unexpected data: %v", path, de.err)
		}
		return tooLarge(err, path, max)
	}
	if status != http.StatusOK || env.status != "success" {
		return promapi.Refuse(promapi.UpstreamFailed, "upstream %s answered %d: %s", path, status, env.error)
	}
	return nil
}

// tooLarge turns a read past the cap into the refusal that names the cap;
// any other error is returned as it is.
func tooLarge(err error, path string, max int64) error {
	if !errors.Is(err, errCapped) {
		return err
	}
	return promapi.Refuse(promapi.TooLarge,
		"the upstream's answer to %s is larger than max_metadata_response (%s): ask for one metric family with ?metric=<name>, or raise max_metadata_response in prom_tenant",
		path, humanize.IBytes(uint64(max)))
}

// dataError is data of an answer that has not the expected form.
type dataError struct{ err error }

func (e *dataError) Error() string { return e.err.Error() }
func (e *dataError) Unwrap() error { return e.err }

// unexpected reports data of an unexpected form, unless err is a failure to
// read (the cap, the upstream going away), which is reported as it is.
func unexpected(err error) error {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) || errors.Is(err, errUnexpectedToken) {
		return &dataError{err}
	}
	return err
}

var errUnexpectedToken = errors.New("unexpected JSON token")

// walkObject reads a JSON object from dec and calls field for each key, with
// dec at its value; field must consume the value.
func walkObject(dec *json.Decoder, field func(key string) error) error {
	if err := expectDelim(dec, '{'); err != nil {
		return err
	}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return err
		}
		key, ok := tok.(string)
		if !ok {
			return fmt.Errorf("%w: %v", errUnexpectedToken, tok)
		}
		if err := field(key); err != nil {
			return err
		}
	}
	_, err := dec.Token() // '}'
	return err
}

// walkArray reads a JSON array (or null, as none) from dec and calls elem
// for each element, with dec at it; elem must consume it.
func walkArray(dec *json.Decoder, elem func() error) error {
	tok, err := dec.Token()
	if err != nil || tok == nil {
		return err
	}
	if d, ok := tok.(json.Delim); !ok || d != '[' {
		return fmt.Errorf("%w: %v, want [", errUnexpectedToken, tok)
	}
	for dec.More() {
		if err := elem(); err != nil {
			return err
		}
	}
	_, err = dec.Token() // ']'
	return err
}

func expectDelim(dec *json.Decoder, want json.Delim) error {
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	if d, ok := tok.(json.Delim); !ok || d != want {
		return fmt.Errorf("%w: %v, want %v", errUnexpectedToken, tok, want)
	}
	return nil
}

// skipValue reads past one JSON value of any size without keeping it.
func skipValue(dec *json.Decoder) error {
	depth := 0
	for {
		tok, err := dec.Token()
		if err != nil {
			return err
		}
		switch tok {
		case json.Delim('{'), json.Delim('['):
			depth++
		case json.Delim('}'), json.Delim(']'):
			depth--
		}
		if depth == 0 {
			return nil
		}
	}
}

// errCapped is returned by a cappedReader past its limit.
var errCapped = errors.New("answer larger than the cap")

// cappedReader reads at most n bytes of r, then fails with errCapped.
type cappedReader struct {
	r io.Reader
	n int64
}

func (c *cappedReader) Read(p []byte) (int, error) {
	if c.n <= 0 {
		return 0, errCapped
	}
	if int64(len(p)) > c.n {
		p = p[:c.n]
	}
	n, err := c.r.Read(p)
	c.n -= int64(n)
	return n, err
}

// pipeResponse is the http.ResponseWriter of a sub-request: it hands the
// answer's body to the reader of a pipe as the upstream writes it, apart
// from the tenant's own response.
type pipeResponse struct {
	header http.Header
	status int
	body   *io.PipeWriter
	once   sync.Once
	ready  chan struct{} // closed when status and header are known
}

func (p *pipeResponse) Header() http.Header { return p.header }

func (p *pipeResponse) WriteHeader(status int) {
	if status >= 200 { // informational answers (103 Early Hints) are not the answer
		p.start(status)
	}
}

func (p *pipeResponse) Write(b []byte) (int, error) {
	p.start(http.StatusOK)
	return p.body.Write(b)
}

// Flush is a no-op: the pipe hands on every write at once.
func (p *pipeResponse) Flush() {}

func (p *pipeResponse) start(status int) {
	p.once.Do(func() {
		p.status = status
		close(p.ready)
	})
}
