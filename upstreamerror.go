package promtenant

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
	"unicode/utf8"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"golang.org/x/net/html"

	"github.com/prom-tenant/caddy-prom-tenant/internal/promapi"
)

const (
	// maxUpstreamErrorBody bounds what is kept of an upstream's error
	// answer that is not JSON (a load balancer's HTML page, Prometheus's
	// plain-text 503 while it starts); the rest is read and dropped.
	maxUpstreamErrorBody = 16 << 10
	// maxUpstreamErrorText bounds the upstream's text quoted in the
	// envelope, in bytes.
	maxUpstreamErrorText = 512
)

// envelopeWriter is the response writer the next handler (reverse_proxy)
// writes the upstream's answer to. Every answer passes through as it
// streams, except an error (status 400 and above) that is not typed JSON:
// Grafana and API clients show only an envelope's "error", so such an
// answer is held (its first maxUpstreamErrorBody bytes) and finish writes
// it: Prometheus's envelope as it is, anything else in an envelope, with
// the upstream's status and text. JSON answers, the upstream's own
// envelopes among them, are untouched.
type envelopeWriter struct {
	caddyhttp.ResponseWriterWrapper
	wroteHeader bool
	held        bool // the answer is a non-JSON error, held for finish
	status      int
	body        []byte
}

func newEnvelopeWriter(w http.ResponseWriter) *envelopeWriter {
	return &envelopeWriter{ResponseWriterWrapper: caddyhttp.ResponseWriterWrapper{ResponseWriter: w}}
}

func (w *envelopeWriter) WriteHeader(status int) {
	if w.wroteHeader {
		return
	}
	if status >= 100 && status <= 199 { // informational: the final header follows
		w.ResponseWriterWrapper.WriteHeader(status)
		return
	}
	w.wroteHeader, w.status = true, status
	if status >= 400 && !isJSON(w.Header().Get("Content-Type")) {
		w.held = true
		return
	}
	w.ResponseWriterWrapper.WriteHeader(status)
}

func (w *envelopeWriter) Write(p []byte) (int, error) {
	w.WriteHeader(http.StatusOK)
	if !w.held {
		return w.ResponseWriterWrapper.Write(p)
	}
	if room := maxUpstreamErrorBody - len(w.body); room > 0 {
		w.body = append(w.body, p[:min(len(p), room)]...)
	}
	return len(p), nil
}

// ReadFrom keeps the underlying writer's fast path for answers that pass.
func (w *envelopeWriter) ReadFrom(r io.Reader) (int64, error) {
	w.WriteHeader(http.StatusOK)
	if !w.held {
		return w.ResponseWriterWrapper.ReadFrom(r)
	}
	return io.Copy(struct{ io.Writer }{w}, r) // without ReaderFrom: no recursion
}

// FlushError flushes an answer that passes; a held one has nothing to send
// yet, and flushing before the header would send a 200.
func (w *envelopeWriter) FlushError() error {
	if !w.wroteHeader || w.held {
		return nil
	}
	return http.NewResponseController(&w.ResponseWriterWrapper).Flush()
}

// finish writes a held answer, and reports whether it did: the upstream's
// own error envelope as it is, anything else in an envelope of ours.
func (w *envelopeWriter) finish() bool {
	if !w.held {
		return false
	}
	ue := readUpstreamError(w.status, w.Header(), w.body)
	h := w.Header()
	h.Del("Content-Length") // the upstream's, for its own body
	if ue.envelope != nil {
		h.Del("Content-Encoding") // the envelope is written decoded
		h.Set("Content-Type", "application/json")
		w.ResponseWriterWrapper.WriteHeader(w.status)
		_, _ = w.ResponseWriterWrapper.Write(ue.envelope)
		return true
	}
	msg := fmt.Sprintf("upstream answered %d %s", w.status, http.StatusText(w.status))
	if ue.text != "" {
		msg += ": " + ue.text
	}
	promapi.WriteError(&w.ResponseWriterWrapper, w.status, ue.errorType, msg)
	return true
}

// upstreamError is what a tenant is told of an upstream's error answer.
type upstreamError struct {
	// envelope is the body, decoded, when it is Prometheus's error
	// envelope; errorType and text are then the envelope's own.
	envelope  []byte
	errorType string
	text      string
}

// readUpstreamError reads an upstream's error answer (status 400 and
// above, its first maxUpstreamErrorBody bytes), for forwarded requests
// and sub-requests alike. A body that is Prometheus's error envelope is
// the upstream's own answer, whatever its Content-Type says (Thanos Query
// Frontend sends its envelopes as text/plain, a server may send none);
// anything else is typed by its status, and its text is upstreamText's.
func readUpstreamError(status int, h http.Header, body []byte) upstreamError {
	ue := upstreamError{errorType: upstreamErrorType(status)}
	body, note := decodedBody(h, body)
	if note != "" {
		ue.text = note
		return ue
	}
	var env struct {
		Status    string  `json:"status"`
		ErrorType string  `json:"errorType"`
		Error     *string `json:"error"`
	}
	if json.Unmarshal(body, &env) == nil && env.Status == "error" && env.ErrorType != "" && env.Error != nil {
		return upstreamError{envelope: body, errorType: env.ErrorType, text: *env.Error}
	}
	ue.text = upstreamText(h, body)
	return ue
}

// isJSON reports whether a Content-Type is JSON (application/json, or a
// +json type).
func isJSON(contentType string) bool {
	t, _, err := mime.ParseMediaType(contentType)
	return err == nil && (t == "application/json" || strings.HasSuffix(t, "+json"))
}

// upstreamErrorType is the envelope's errorType for an upstream's status,
// as Prometheus would have typed it.
func upstreamErrorType(status int) string {
	switch {
	case status == http.StatusNotFound:
		return promapi.ErrorNotFound
	case status == http.StatusRequestTimeout || status == http.StatusGatewayTimeout:
		return promapi.ErrorTimeout
	case status == http.StatusUnprocessableEntity:
		return promapi.ErrorExecution
	case status < 500:
		return promapi.ErrorBadData
	case status == http.StatusInternalServerError:
		return promapi.ErrorInternal
	default:
		return promapi.ErrorUnavailable
	}
}

// decodedBody returns an error body without its content encoding (the
// client's Accept-Encoding reaches the upstream), or a note saying why it
// could not be: gzip is decoded, other encodings are not.
func decodedBody(h http.Header, body []byte) ([]byte, string) {
	switch enc := strings.ToLower(strings.TrimSpace(h.Get("Content-Encoding"))); enc {
	case "", "identity":
		return body, ""
	case "gzip":
		zr, err := gzip.NewReader(bytes.NewReader(body))
		if err != nil {
			return nil, "(body in gzip encoding, not readable)"
		}
		// A body cut at maxUpstreamErrorBody ends in a read error: keep
		// what was decoded.
		out, _ := io.ReadAll(io.LimitReader(zr, maxUpstreamErrorBody))
		return out, ""
	default:
		return nil, "(body in " + enc + " encoding)"
	}
}

// upstreamText is the readable text of an upstream's decoded error body,
// on one line and at most maxUpstreamErrorText bytes: HTML reduced to its
// text, network addresses redacted (see redactAddresses).
func upstreamText(h http.Header, body []byte) string {
	text := string(body)
	if t, _, _ := mime.ParseMediaType(h.Get("Content-Type")); t == "text/html" {
		text = htmlText(body)
	}
	text = strings.Join(strings.Fields(strings.ToValidUTF8(text, "\uFFFD")), " ")
	text = redactAddresses(text)
	if len(text) <= maxUpstreamErrorText {
		return text
	}
	cut := maxUpstreamErrorText
	for cut > 0 && !utf8.RuneStart(text[cut]) {
		cut--
	}
	return text[:cut] + "…"
}

// htmlText is the text of an HTML page without its markup, scripts and
// styles: what a browser would show of a load balancer's error page.
func htmlText(body []byte) string {
	var b strings.Builder
	z := html.NewTokenizer(bytes.NewReader(body))
	skip := 0 // inside <script> or <style>
	for {
		switch z.Next() {
		case html.ErrorToken:
			return b.String()
		case html.StartTagToken:
			if name, _ := z.TagName(); string(name) == "script" || string(name) == "style" {
				skip++
			}
		case html.EndTagToken:
			if name, _ := z.TagName(); (string(name) == "script" || string(name) == "style") && skip > 0 {
				skip--
			}
		case html.TextToken:
			if skip == 0 {
				b.Write(z.Text())
				b.WriteByte(' ')
			}
		}
	}
}
