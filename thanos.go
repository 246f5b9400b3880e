package promtenant

import (
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
	if h.backend != backendThanos || ep != labelValues {
		return false
	}
	if d, err := strconv.ParseBool(form.Get("dedup")); err == nil && !d {
		return false
	}
	replicas := h.ReplicaLabels
	if rl := form["replicaLabels[]"]; len(rl) > 0 {
		replicas = rl
	}
	name, _ := labelValuesName(path)
	return slices.Contains(replicas, model.UnescapeName(name, model.ValueEncodingEscaping))
}

// writeNoLabelValues answers a label-values request with no values.
func writeNoLabelValues(w http.ResponseWriter) error {
	w.Header().Set("Content-Type", "application/json")
	_, err := w.Write([]byte(`{"status":"success","data":[]}`))
	return err
}
