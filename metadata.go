package promtenant

import (
	"encoding/json"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/prom-tenant/caddy-prom-tenant/internal/promapi"
	"github.com/prom-tenant/caddy-prom-tenant/rewrite"
)

// serveMetadata answers /api/v1/metadata with what a Prometheus holding only
// the tenant's series would answer: the metadata of the targets whose series
// of each family the tenant can see (see targetmetadata.go), merged as
// Prometheus merges it. Two sub-requests, whatever the number of targets:
// the metadata by target, and one query for the (name, target) pairs the
// tenant has series of.
func (h *Handler) serveMetadata(w http.ResponseWriter, r *http.Request, p *rewrite.Policy, form url.Values, next caddyhttp.Handler) error {
	limit, err := intParam(form, "limit")
	if err != nil {
		return err
	}
	limitPerMetric, err := intParam(form, "limit_per_metric")
	if err != nil {
		return err
	}
	metric := form.Get("metric")
	upstream := url.Values{}
	if metric != "" {
		upstream.Set("metric", metric)
	}
	data := map[string][]metaKey{}
	if limit == 0 {
		return writeMetadata(w, data)
	}
	tm := newTargetMetadata()
	if err := h.subrequest(r, http.MethodGet, "/api/v1/targets/metadata", upstream, next, h.MaxMetadataResponse, tm.decode(metric)); err != nil {
		return err
	}
	if len(tm.entries) > 0 {
		names := ""
		if metric != "" {
			names = tm.seriesNames([]string{metric})
		}
		visible, err := h.visibleSeries(r, p, tm, names, next)
		if err != nil {
			return err
		}
		data = mergeMetadata(tm, visible, limitPerMetric)
	}
	if limit >= 0 && len(data) > limit {
		// Prometheus keeps any limit families (a map's order); these are
		// the first by name.
		for _, f := range slices.Sorted(maps.Keys(data))[limit:] {
			delete(data, f)
		}
	}
	return writeMetadata(w, data)
}

// writeMetadata writes a successful answer; encoding/json writes the
// families sorted by name, as Prometheus's answer has them.
func writeMetadata(w http.ResponseWriter, data map[string][]metaKey) error {
	body, err := json.Marshal(struct {
		Status string               `json:"status"`
		Data   map[string][]metaKey `json:"data"`
	}{"success", data})
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/json")
	_, err = w.Write(body)
	return err
}

// intParam reads an integer parameter; -1 (no limit) when it is not given.
func intParam(form url.Values, name string) (int, error) {
	s := form.Get(name)
	if s == "" {
		return -1, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		return 0, promapi.Refuse(promapi.BadRequest, "invalid %s %q: %v", name, s, err)
	}
	return n, nil
}

// mergeMetadata merges the entries the tenant may see as Prometheus's
// metricMetadata does: by family, identical metadata once, at most
// limitPerMetric (when positive) different ones per family, counted in the
// order of the targets.
func mergeMetadata(tm *targetMetadata, visible map[seen]bool, limitPerMetric int) map[string][]metaKey {
	data := map[string][]metaKey{}
	kept := map[[2]int32]bool{} // family, meta
	for _, e := range tm.entries {
		family, md := tm.families[e.family], tm.metas[e.meta]
		if !familyVisible(family, md.Type, func(name string) bool { return visible[seen{name, e.target}] }) {
			continue
		}
		k := [2]int32{e.family, e.meta}
		if kept[k] || (limitPerMetric > 0 && len(data[family]) >= limitPerMetric) {
			continue
		}
		kept[k] = true
		data[family] = append(data[family], md)
	}
	return data
}

// familySuffixes are the suffixes a metric family's series add to the family
// name, by the family's type. Prometheus keys metadata by family:
// http_request_duration_seconds for a histogram whose series are
// http_request_duration_seconds_bucket, _sum and _count; http_requests for an
// OpenMetrics counter whose series is http_requests_total.
var familySuffixes = map[string][]string{
	"counter":        {"_total", "_created"},
	"histogram":      {"_bucket", "_sum", "_count", "_created"},
	"gaugehistogram": {"_bucket", "_gsum", "_gcount"},
	"summary":        {"_sum", "_count", "_created"},
	"info":           {"_info"},
}

// familyVisible reports whether the tenant has a series of a family of that
// type: one named as the family (a gauge, a native histogram, a counter
// exposed in the text format with _total in its family name) or with one of
// the type's suffixes. An unknown type counts only the family name itself.
func familyVisible(family, typ string, has func(name string) bool) bool {
	if has(family) {
		return true
	}
	for _, suffix := range familySuffixes[typ] {
		if has(family + suffix) {
			return true
		}
	}
	return false
}
