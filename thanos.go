package promtenant

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/prometheus/common/model"

	"github.com/prom-tenant/caddy-prom-tenant/internal/promapi"
)

// What Thanos Query (v0.42) serves differently from Prometheus, and how the
// proxy answers it for backend thanos.

// thanosRefusal refuses, with backend thanos, the paths Thanos Query cannot
// answer as Prometheus does under the tenant's policy; nil otherwise.
func (h *Handler) thanosRefusal(ep *endpoint) error {
	if h.backend != backendThanos {
		return nil
	}
	switch ep.name {
	case "/federate":
		return promapi.Refuse(promapi.NotFound,
			"/federate is not served with backend thanos: Thanos Query has no /federate; copy the tenant's series with prom_remote_write instead")
	case "/api/v1/metadata":
		// The proxy answers metadata from the metadata by target, keeping
		// the targets the tenant has series of; Thanos's /api/v1/metadata
		// merges every target's, so what is the tenant's cannot be told.
		return promapi.Refuse(promapi.NotFound,
			"/api/v1/metadata is not served with backend thanos: Thanos Query has no /api/v1/targets/metadata, and its /api/v1/metadata merges every target's metadata, so the metadata of the tenant's series alone cannot be told")
	}
	return nil
}

// validateReplicaLabels checks the ReplicaLabels option.
func validateReplicaLabels(backend backendKind, names []string) error {
	if len(names) == 0 {
		return nil
	}
	if backend != backendThanos {
		return fmt.Errorf("replica_labels is only meaningful with backend thanos, not %s", backend)
	}
	for _, n := range names {
		if !model.LegacyValidation.IsValidLabelName(n) {
			return fmt.Errorf("replica_labels: %q is not a label name", n)
		}
	}
	return nil
}

// isReplicaLabelValues reports whether a label-values request asks Thanos
// Query for the values of a label it deduplicates by. Its label APIs do
// not deduplicate: they pass no replica labels to the stores whatever the
// request says (labelValues in pkg/api/query/v1.go calls the querier with
// none), so the answer holds the replicas' names. A Prometheus holding the
// tenant's series once has no such label, and Thanos's query and series
// answers have none either; the proxy answers it with no values.
//
// The request's own dedup and replicaLabels[] (where backend_params lets
// them through) decide, as they decide for Thanos's query API: with
// dedup=false the replica labels are in every answer, so the request is
// forwarded.
func (h *Handler) isReplicaLabelValues(ep *endpoint, path string, form url.Values) bool {
	if ep != labelValues {
		return false
	}
	name, _ := labelValuesName(path)
	return slices.Contains(h.replicaLabels(form), model.UnescapeName(name, model.ValueEncodingEscaping))
}

// replicaLabels are the labels Thanos Query deduplicates a request's
// answers by: none unless backend thanos, none with dedup=false, the
// request's replicaLabels[] if it names some, else ReplicaLabels.
func (h *Handler) replicaLabels(form url.Values) []string {
	if h.backend != backendThanos {
		return nil
	}
	if d, err := strconv.ParseBool(form.Get("dedup")); err == nil && !d {
		return nil
	}
	if rl := form["replicaLabels[]"]; len(rl) > 0 {
		return rl
	}
	return h.ReplicaLabels
}

// maxLabelNamesAnswer bounds the /api/v1/labels answer held to take the
// replica labels out; a larger one (some hundred thousand label names)
// passes as Thanos sent it.
const maxLabelNamesAnswer = 4 << 20

// labelNamesWriter returns the writer for the answer to a forwarded request
// (r, already rebuilt) and a func to call once it is written. For Thanos's
// /api/v1/labels it takes the replica labels out of the names (see
// replicaNamesWriter); for any other request it is w itself.
func (h *Handler) labelNamesWriter(w http.ResponseWriter, r *http.Request, ep *endpoint, form url.Values) (http.ResponseWriter, func()) {
	replicas := h.replicaLabels(form)
	if ep.name != "/api/v1/labels" || len(replicas) == 0 {
		return w, func() {}
	}
	r.Header.Del("Accept-Encoding") // the answer is read; encode still compresses it for the client
	rw := &replicaNamesWriter{ResponseWriterWrapper: caddyhttp.ResponseWriterWrapper{ResponseWriter: w}, replicas: replicas}
	return rw, rw.finish
}

// replicaNamesWriter takes the replica labels out of a successful
// /api/v1/labels answer of Thanos Query. This is not filtering results
// after the fact: the request already selects only the tenant's series,
// and the names are those series' own. A replica label is an external
// label Thanos adds to every series of a replica and removes from them in
// its query and series answers (deduplication), but not in this one (its
// label APIs pass no replica labels to the stores); taking the name out
// makes this answer agree with the others, and with a Prometheus holding
// the tenant's series once. It holds the answer (at most
// maxLabelNamesAnswer, then it passes it on untouched), which is one name
// list: linear in the answer. Anything but a 200 JSON answer passes as it is.
type replicaNamesWriter struct {
	caddyhttp.ResponseWriterWrapper
	replicas []string
	holding  bool
	wrote    bool
	body     []byte
}

func (w *replicaNamesWriter) WriteHeader(status int) {
	if w.wrote || status >= 100 && status <= 199 {
		w.ResponseWriterWrapper.WriteHeader(status)
		return
	}
	w.wrote = true
	h := w.Header()
	if status == http.StatusOK && isJSON(h.Get("Content-Type")) && h.Get("Content-Encoding") == "" {
		w.holding = true
		h.Del("Content-Length") // the answer may get shorter
	}
	w.ResponseWriterWrapper.WriteHeader(status)
}

func (w *replicaNamesWriter) Write(p []byte) (int, error) {
	if !w.wrote {
		w.WriteHeader(http.StatusOK)
	}
	if !w.holding {
		return w.ResponseWriterWrapper.Write(p)
	}
	if len(w.body)+len(p) > maxLabelNamesAnswer {
		w.holding = false
		if _, err := w.ResponseWriterWrapper.Write(w.body); err != nil {
			return 0, err
		}
		w.body = nil
		return w.ResponseWriterWrapper.Write(p)
	}
	w.body = append(w.body, p...)
	return len(p), nil
}

// ReadFrom hides the wrapped writer's ReadFrom, which would write past Write.
func (w *replicaNamesWriter) ReadFrom(r io.Reader) (int64, error) {
	return io.Copy(struct{ io.Writer }{w}, r)
}

// FlushError sends nothing of a held answer before it is complete.
func (w *replicaNamesWriter) FlushError() error {
	if w.holding {
		return nil
	}
	return http.NewResponseController(&w.ResponseWriterWrapper).Flush()
}

// finish writes a held answer without the replica labels; one it cannot
// read as Prometheus's envelope as it came.
func (w *replicaNamesWriter) finish() {
	if !w.holding {
		return
	}
	w.holding = false
	body := w.body
	var env map[string]json.RawMessage
	var names []string
	if json.Unmarshal(body, &env) == nil && json.Unmarshal(env["data"], &names) == nil && names != nil {
		names = slices.DeleteFunc(names, func(n string) bool { return slices.Contains(w.replicas, n) })
		if data, err := json.Marshal(names); err == nil {
			env["data"] = data
			if b, err := json.Marshal(env); err == nil {
				body = b
			}
		}
	}
	_, _ = w.ResponseWriterWrapper.Write(body)
}

// writeNoLabelValues answers a label-values request with no values.
func writeNoLabelValues(w http.ResponseWriter) error {
	w.Header().Set("Content-Type", "application/json")
	_, err := w.Write([]byte(`{"status":"success","data":[]}`))
	return err
}
