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
// answer is held (its first maxUpstreamErrorBody bytes, decoded) and
// finish writes it: Prometheus's envelope as it is, anything else in an
// envelope, with the upstream's status and text. JSON answers, the
// upstream's own envelopes among them, are untouched.
type envelopeWriter struct {
	heldWriter
}

func newEnvelopeWriter(w http.ResponseWriter) *envelopeWriter {
	return &envelopeWriter{newHeldWriter(w, maxUpstreamErrorBody, func(status int, h http.Header) bool {
		return status >= 400 && !isJSON(h.Get("Content-Type"))
	})}
}

// finish writes a held answer, and reports whether it did: the upstream's
// own error envelope as it is, anything else in an envelope of ours.
func (w *envelopeWriter) finish() bool {
	if !w.held {
		return false
	}
	body, _, note := w.body() // a cut body is no envelope: its text is quoted, cut shorter
	ue := readDecodedUpstreamError(w.status, w.Header(), body, note)
	if ue.envelope != nil {
		w.Header().Set("Content-Type", "application/json")
		w.writeHeld(w.status, ue.envelope)
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
	body, _, note := decodedBody(h, body, maxUpstreamErrorBody)
	return readDecodedUpstreamError(status, h, body, note)
}

// readDecodedUpstreamError is readUpstreamError for a decoded body, or the
// note saying why it could not be decoded.
func readDecodedUpstreamError(status int, h http.Header, body []byte, note string) upstreamError {
	ue := upstreamError{errorType: upstreamErrorType(status)}
	if note != "" {
		ue.text = note
		return ue
	}
	if errorType, text, ok := errorEnvelope(body); ok {
		return upstreamError{envelope: body, errorType: errorType, text: text}
	}
	ue.text = upstreamText(h, body)
	return ue
}

// errorEnvelope reads body as Prometheus's error envelope.
func errorEnvelope(body []byte) (errorType, text string, ok bool) {
	var env struct {
		Status    string  `json:"status"`
		ErrorType string  `json:"errorType"`
		Error     *string `json:"error"`
	}
	if json.Unmarshal(body, &env) == nil && env.Status == "error" && env.ErrorType != "" && env.Error != nil {
		return env.ErrorType, *env.Error, true
	}
	return "", "", false
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

// decodedBody returns a body without its content encoding (the client's
// Accept-Encoding reaches the upstream), at most limit bytes of it and
// whether it was longer (or cut before it could be decoded whole); or a
// note saying why it could not be decoded: gzip is decoded, other
// encodings are not.
func decodedBody(h http.Header, body []byte, limit int) (out []byte, truncated bool, note string) {
	switch enc := strings.ToLower(strings.TrimSpace(h.Get("Content-Encoding"))); enc {
	case "", "identity":
		if len(body) > limit {
			return body[:limit], true, ""
		}
		return body, false, ""
	case "gzip":
		zr, err := gzip.NewReader(bytes.NewReader(body))
		if err != nil {
			return nil, false, "(body in gzip encoding, not readable)"
		}
		out, err := io.ReadAll(io.LimitReader(zr, int64(limit)+1))
		if len(out) > limit {
			return out[:limit], true, ""
		}
		// A body cut before its end ends in a read error: keep what was
		// decoded, and say it is not all.
		return out, err != nil, ""
	default:
		return nil, false, "(body in " + enc + " encoding)"
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
