package promtenant

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"

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
	return checkReplicaLabelNames(names)
}

// checkReplicaLabelNames checks the ReplicaLabels option's names, which the
// Caddyfile checks as it reads them.
func checkReplicaLabelNames(names []string) error {
	for _, n := range names {
		if err := checkReplicaLabel(n); err != nil {
			return fmt.Errorf("replica_labels: %q: %v", n, err)
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
// replica labels out (some hundred thousand label names); a larger one is
// refused, as the proxy cannot tell which of its names to take out.
const maxLabelNamesAnswer = 4 << 20

// labelNamesWriter returns the writer for the answer to a forwarded request
// and a func to call once it is written, which returns a refusal to answer
// instead if there is one. For Thanos's /api/v1/labels it takes the
// replica labels out of the names (see replicaNamesWriter); for any other
// request it is w itself.
func (h *Handler) labelNamesWriter(w http.ResponseWriter, r *http.Request, ep *endpoint, form url.Values) (http.ResponseWriter, func() error) {
	replicas := h.replicaLabels(form)
	if ep.name != "/api/v1/labels" || len(replicas) == 0 {
		return w, func() error { return nil }
	}
	r.Header.Del("Accept-Encoding") // the answer is read; encode still compresses it for the client
	rw := &replicaNamesWriter{replicas: replicas}
	rw.heldWriter = newHeldWriter(w, maxLabelNamesAnswer, func(status int, h http.Header) bool {
		return status == http.StatusOK // an error passes, to the envelope writer
	})
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
// the tenant's series once. It holds the answer, at most
// maxLabelNamesAnswer bytes, which is one name list: linear in the answer.
// A success it cannot read, or one over the bound, is refused: passing it
// would pass the replica labels.
type replicaNamesWriter struct {
	heldWriter
	replicas []string
}

// finish writes a held answer without the replica labels, or returns the
// refusal to answer instead (nothing of it was sent).
func (w *replicaNamesWriter) finish() error {
	if !w.held {
		return nil
	}
	body, truncated, note := w.body()
	if truncated {
		return promapi.Refuse(promapi.TooLarge,
			"Thanos Query's /api/v1/labels answer is over %d bytes, which the proxy holds to take the replica labels out: narrow it with match[] or start and end", maxLabelNamesAnswer)
	}
	var env map[string]json.RawMessage
	var names []string
	if note != "" || json.Unmarshal(body, &env) != nil || env["data"] == nil || json.Unmarshal(env["data"], &names) != nil {
		return promapi.Refuse(promapi.UpstreamFailed,
			"Thanos Query's /api/v1/labels answer is not Prometheus's envelope with a list of names, so the replica labels cannot be taken out of it")
	}
	if names == nil { // "data":null, Thanos's answer with no names
		w.writeHeld(w.status, body)
		return nil
	}
	names = slices.DeleteFunc(names, func(n string) bool { return slices.Contains(w.replicas, n) })
	data, err := json.Marshal(names)
	if err != nil {
		return err
	}
	env["data"] = data
	if body, err = json.Marshal(env); err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/json")
	w.writeHeld(w.status, body)
	return nil
}

// writeNoLabelValues answers a label-values request with no values.
func writeNoLabelValues(w http.ResponseWriter) error {
	w.Header().Set("Content-Type", "application/json")
	_, err := w.Write([]byte(`{"status":"success","data":[]}`))
	return err
}
