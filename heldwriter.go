package promtenant

import (
	"io"
	"net/http"
	"strings"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// heldWriter is the response writer for an upstream answer that the proxy
// may have to read before any of it is sent: "hold the answer, bounded,
// then decide". At the final header, hold decides whether the answer is
// held; one that is not passes as it streams (the wrapped writer's
// ReadFrom fast path kept). A held answer's header is not sent: its
// caller's finish reads it with body and writes what it decides.
type heldWriter struct {
	caddyhttp.ResponseWriterWrapper
	// hold reports, at the final header, whether the answer is held.
	hold func(status int, h http.Header) bool
	// limit bounds the held body, decoded; body reports an answer over it
	// as truncated.
	limit int

	wroteHeader bool
	held        bool
	status      int
	raw         []byte // as it came, in its Content-Encoding
	rawCut      bool
}

func newHeldWriter(w http.ResponseWriter, limit int, hold func(status int, h http.Header) bool) heldWriter {
	return heldWriter{ResponseWriterWrapper: caddyhttp.ResponseWriterWrapper{ResponseWriter: w}, hold: hold, limit: limit}
}

func (w *heldWriter) WriteHeader(status int) {
	if w.wroteHeader {
		return
	}
	if status >= 100 && status <= 199 { // informational: the final header follows
		w.ResponseWriterWrapper.WriteHeader(status)
		return
	}
	w.wroteHeader, w.status = true, status
	if w.hold(status, w.Header()) {
		w.held = true
		return
	}
	w.ResponseWriterWrapper.WriteHeader(status)
}

func (w *heldWriter) Write(p []byte) (int, error) {
	w.WriteHeader(http.StatusOK)
	if !w.held {
		return w.ResponseWriterWrapper.Write(p)
	}
	room := w.rawLimit() - len(w.raw)
	if len(p) > room {
		w.rawCut = true
	}
	w.raw = append(w.raw, p[:min(len(p), max(room, 0))]...)
	return len(p), nil // the rest is read and dropped
}

// rawLimit bounds the body kept as it came: one byte over limit tells a
// decoded body over it; an encoded one gets room for gzip's few bytes of
// overhead, past which its decoded body is over limit as well.
func (w *heldWriter) rawLimit() int {
	if enc := strings.TrimSpace(w.Header().Get("Content-Encoding")); enc == "" || strings.EqualFold(enc, "identity") {
		return w.limit + 1
	}
	return 2*w.limit + 1024
}

// ReadFrom keeps the wrapped writer's fast path for answers that pass.
func (w *heldWriter) ReadFrom(r io.Reader) (int64, error) {
	w.WriteHeader(http.StatusOK)
	if !w.held {
		return w.ResponseWriterWrapper.ReadFrom(r)
	}
	return io.Copy(struct{ io.Writer }{w}, r) // without ReaderFrom: no recursion
}

// FlushError flushes an answer that passes; a held one has nothing to send
// yet, and flushing before the header would send a 200.
func (w *heldWriter) FlushError() error {
	if !w.wroteHeader || w.held {
		return nil
	}
	return http.NewResponseController(&w.ResponseWriterWrapper).Flush()
}

// body is the held answer decoded, at most limit bytes, and whether the
// answer was longer; or a note saying why it cannot be decoded. The
// header then describes the decoded body, of unknown length.
func (w *heldWriter) body() (body []byte, truncated bool, note string) {
	h := w.Header()
	body, truncated, note = decodedBody(h, w.raw, w.limit)
	h.Del("Content-Encoding")
	h.Del("Content-Length")
	return body, truncated || w.rawCut, note
}

// writeHeld writes the decided answer of a held one.
func (w *heldWriter) writeHeld(status int, body []byte) {
	w.ResponseWriterWrapper.WriteHeader(status)
	_, _ = w.ResponseWriterWrapper.Write(body)
}
