package promtenant

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
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
// request forwarded to VictoriaMetrics. A success passes as it streams; an
// error answer (status 400 and above) is held and finish writes it with
// what VictoriaMetrics quoted of the rewritten request replaced or taken
// out: the rewritten query (Go-quoted in a JSON envelope's error, or
// URL-encoded in a plain-text error's requestURI) by the tenant's, and
// what the tenant did not write by a neutral text (see scrubVMText).
type vmErrorWriter struct {
	heldWriter
	original, rewritten string // the query, if the request has one
}

func newVMErrorWriter(w http.ResponseWriter, original, rewritten string) *vmErrorWriter {
	// The rewritten query, quoted and JSON-escaped (at most 6 bytes a
	// byte), fits beside the rest of the error text.
	limit := maxUpstreamErrorBody + 6*len(rewritten)
	return &vmErrorWriter{
		heldWriter: newHeldWriter(w, limit, func(status int, _ http.Header) bool { return status >= 400 }),
		original:   original, rewritten: rewritten,
	}
}

// finish writes a held error answer, decoded, as restore makes it. The
// envelope writer behind it then passes an envelope, or puts anything else
// (sent as text/plain) in one, as for any upstream: never broken JSON.
func (w *vmErrorWriter) finish() {
	if !w.held {
		return
	}
	body, cut, note := w.body()
	h := w.Header()
	switch {
	case note != "":
		body = []byte(note)
	case cut:
		// What VictoriaMetrics quoted may be cut anywhere in what was
		// kept: say only that there was an error.
		body = []byte("(VictoriaMetrics' error text was too long to show)")
	default:
		body = w.restore(body)
	}
	if _, _, ok := errorEnvelope(body); !ok {
		h.Set("Content-Type", "text/plain; charset=utf-8")
	}
	w.writeHeld(w.status, body)
}

// restore rewrites an error body: the error of Prometheus's envelope
// (VictoriaMetrics' APIs), or plain text (its /federate).
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
	if w.rewritten != w.original {
		text = strings.NewReplacer(
			strconv.Quote(w.rewritten), strconv.Quote(w.original),
			url.QueryEscape(w.rewritten), url.QueryEscape(w.original),
		).Replace(text)
	}
	return scrubVMText(text, w.original)
}

// What VictoriaMetrics (1.79) quotes of a request in its error texts,
// besides the whole query: the request's URI and the client's address
// (plain-text errors), the filters a selection ran (series, labels,
// /federate: `cannot fetch time series for "filters=[…], timeRange=[…]"`;
// a query's search: `tagFilters=[…] on the time range`) and a query's
// subexpression (`cannot evaluate "…"`). With the policy written into every
// selector, these hold the tenant's policy: they are taken out, the reason
// that follows kept.
var (
	vmRemoteAddr = regexp.MustCompile(`remoteAddr: [^;]*; `)
	vmRequestURI = regexp.MustCompile(`requestURI: [^;]*; `)
	vmFilters    = regexp.MustCompile(`"filters=(?:[^"\\]|\\.)*"`)
	vmTagFilters = regexp.MustCompile(`tagFilters=\[.*\] on the time range`)
	vmEvaluate   = regexp.MustCompile(`cannot evaluate "(?:[^"\\]|\\.)*"`)
)

// scrubVMText takes the request's quoted parts out of a VictoriaMetrics
// error text; a subexpression that is the tenant's whole query stays.
func scrubVMText(text, original string) string {
	text = vmRemoteAddr.ReplaceAllString(text, "")
	text = vmRequestURI.ReplaceAllString(text, "")
	text = vmFilters.ReplaceAllString(text, "the request's selectors")
	text = vmTagFilters.ReplaceAllString(text, "the selectors on the time range")
	return vmEvaluate.ReplaceAllStringFunc(text, func(m string) string {
		if original != "" && m == "cannot evaluate "+strconv.Quote(original) {
			return m
		}
		return "cannot evaluate a selection"
	})
}

// victoriaMetricsWriter is the writer for the upstream's answer to a
// forwarded request whose query (if any) was rewritten from original, for
// a VictoriaMetrics upstream; nil for another upstream.
func (h *Handler) victoriaMetricsWriter(w http.ResponseWriter, original, rewritten string) *vmErrorWriter {
	if h.backend != backendVictoriaMetrics {
		return nil
	}
	return newVMErrorWriter(w, original, rewritten)
}
