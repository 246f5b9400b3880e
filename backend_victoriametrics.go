package promtenant

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// What `backend victoriametrics` changes. Rewritten queries are exact on
// VictoriaMetrics as they are (the e2e test compares every answer with a
// VictoriaMetrics that holds only the tenant's series); two things are not:
//
//   - VictoriaMetrics quotes the query it ran in its error text
//     (`error when executing query="…"`). That is the rewritten query, with
//     the policy and, for a union, the proxy's part marks in it; a
//     tenant-only VictoriaMetrics quotes the tenant's own query. The
//     upstream's error answers to a rewritten query are held and the
//     rewritten text replaced with the tenant's (vmErrorWriter).
//   - It keeps no metric metadata (1.79 answers /api/v1/metadata with an
//     empty object and has no /api/v1/targets/metadata, from which the
//     proxy builds a tenant's metadata), so /api/v1/metadata is answered
//     empty here, as a tenant-only VictoriaMetrics answers, without asking
//     it (a newer VictoriaMetrics that stores metadata would answer for
//     every metric, which the proxy cannot filter by the policy).

// serveVictoriaMetricsMetadata answers /api/v1/metadata for a
// VictoriaMetrics upstream: no metadata.
func serveVictoriaMetricsMetadata(w http.ResponseWriter) error {
	w.Header().Set("Content-Type", "application/json")
	_, err := io.WriteString(w, `{"status":"success","data":{}}`)
	return err
}

// vmErrorWriter sits between reverse_proxy and the envelope writer for a
// query that was rewritten, in front of VictoriaMetrics. A success passes
// as it streams; an error answer (status 400 and above) is held and
// finish writes it with the rewritten query's text replaced by the
// tenant's query, wherever VictoriaMetrics quoted it: Go-quoted in a JSON
// envelope's error, or URL-encoded in a plain-text error's requestURI.
type vmErrorWriter struct {
	caddyhttp.ResponseWriterWrapper
	original, rewritten string
	wroteHeader         bool
	held                bool
	status              int
	body                []byte
	limit               int // of body; past it the text is not quoted
	cut                 bool
}

// newVMErrorWriter returns nil when there is nothing to replace.
func newVMErrorWriter(w http.ResponseWriter, original, rewritten string) *vmErrorWriter {
	if original == rewritten {
		return nil
	}
	return &vmErrorWriter{
		ResponseWriterWrapper: caddyhttp.ResponseWriterWrapper{ResponseWriter: w},
		original:              original, rewritten: rewritten,
		// The rewritten query, quoted and JSON-escaped (at most 6 bytes
		// a byte), fits beside the rest of the error text.
		limit: maxUpstreamErrorBody + 6*len(rewritten),
	}
}

func (w *vmErrorWriter) WriteHeader(status int) {
	if w.wroteHeader {
		return
	}
	if status >= 100 && status <= 199 {
		w.ResponseWriterWrapper.WriteHeader(status)
		return
	}
	w.wroteHeader, w.status = true, status
	if status >= 400 {
		w.held = true
		return
	}
	w.ResponseWriterWrapper.WriteHeader(status)
}

func (w *vmErrorWriter) Write(p []byte) (int, error) {
	w.WriteHeader(http.StatusOK)
	if !w.held {
		return w.ResponseWriterWrapper.Write(p)
	}
	room := w.limit - len(w.body)
	if len(p) > room {
		w.cut = true
	}
	w.body = append(w.body, p[:min(len(p), max(room, 0))]...)
	return len(p), nil
}

// ReadFrom keeps the fast path for answers that pass.
func (w *vmErrorWriter) ReadFrom(r io.Reader) (int64, error) {
	w.WriteHeader(http.StatusOK)
	if !w.held {
		return w.ResponseWriterWrapper.ReadFrom(r)
	}
	return io.Copy(struct{ io.Writer }{w}, r)
}

// FlushError flushes an answer that passes; a held one is not sent yet.
func (w *vmErrorWriter) FlushError() error {
	if !w.wroteHeader || w.held {
		return nil
	}
	return http.NewResponseController(&w.ResponseWriterWrapper).Flush()
}

// finish writes a held error answer, decoded, with the tenant's query in
// place of the rewritten one. The envelope writer behind it then passes
// an envelope, or puts plain text in one, as for any upstream.
func (w *vmErrorWriter) finish() {
	if !w.held {
		return
	}
	h := w.Header()
	body, note := decodedBody(h, w.body)
	h.Del("Content-Length")
	h.Del("Content-Encoding")
	switch {
	case note != "":
		h.Set("Content-Type", "text/plain; charset=utf-8")
		body = []byte(note)
	case w.cut:
		// The rewritten query may be cut anywhere in what was kept: say
		// only that there was an error.
		h.Set("Content-Type", "text/plain; charset=utf-8")
		body = []byte("(VictoriaMetrics' error text was too long to show)")
	default:
		body = w.restore(body)
	}
	w.ResponseWriterWrapper.WriteHeader(w.status)
	_, _ = w.ResponseWriterWrapper.Write(body)
}

// restore replaces the rewritten query in an error body: in the error of
// Prometheus's envelope (VictoriaMetrics' query APIs), or in plain text.
func (w *vmErrorWriter) restore(body []byte) []byte {
	var env map[string]any
	if json.Unmarshal(body, &env) == nil {
		if text, ok := env["error"].(string); ok {
			env["error"] = w.restoreText(text)
			if out, err := json.Marshal(env); err == nil {
				return out
			}
		}
	}
	return []byte(w.restoreText(string(body)))
}

func (w *vmErrorWriter) restoreText(text string) string {
	return strings.NewReplacer(
		strconv.Quote(w.rewritten), strconv.Quote(w.original),
		url.QueryEscape(w.rewritten), url.QueryEscape(w.original),
	).Replace(text)
}

// victoriaMetricsWriter is the writer for the upstream's answer to a
// query rewritten from original, for a VictoriaMetrics upstream; nil for
// another upstream or a request whose query was not rewritten.
func (h *Handler) victoriaMetricsWriter(w http.ResponseWriter, original, rewritten string) *vmErrorWriter {
	if h.backend != backendVictoriaMetrics {
		return nil
	}
	return newVMErrorWriter(w, original, rewritten)
}
