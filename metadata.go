package promtenant

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/prom-tenant/caddy-prom-tenant/rewrite"
)

// serveMetadata answers /api/v1/metadata for the metric names the tenant may
// see. Metadata is keyed by metric name, not by series, so no selector can
// constrain it upstream: the allowed names are computed exactly under the
// policy (the __name__ values of its selectors), and the answer keeps only
// the metric families those names belong to (familyVisible). limit applies
// after that, as it would on a Prometheus holding only the tenant's series.
func (h *Handler) serveMetadata(w http.ResponseWriter, r *http.Request, p *rewrite.Policy, form url.Values, next caddyhttp.Handler) error {
	limit := -1
	if s := form.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil {
			return refuse(http.StatusBadRequest, errorBadData, "invalid limit %q: %v", s, err)
		}
		if n > 0 {
			limit = n
		}
	}
	match, err := h.enforcer.EnforceMatchers(r.Context(), p, nil)
	if err != nil {
		return err
	}
	var names []string
	if err := h.subrequest(r, "/api/v1/label/__name__/values", url.Values{"match[]": match}, next, &names); err != nil {
		return err
	}
	upstream := url.Values{}
	if s := form.Get("limit_per_metric"); s != "" {
		upstream.Set("limit_per_metric", s)
	}
	if m := form.Get("metric"); m != "" {
		upstream.Set("metric", m)
	}
	var all map[string][]json.RawMessage
	if err := h.subrequest(r, "/api/v1/metadata", upstream, next, &all); err != nil {
		return err
	}
	has := make(map[string]bool, len(names))
	for _, n := range names {
		has[n] = true
	}
	allowed := make(map[string][]json.RawMessage, len(names))
	for _, family := range slices.Sorted(maps.Keys(all)) {
		if limit >= 0 && len(allowed) >= limit {
			break
		}
		var kept []json.RawMessage
		for _, md := range all[family] {
			var entry struct {
				Type string `json:"type"`
			}
			if err := json.Unmarshal(md, &entry); err != nil {
				return refuse(http.StatusBadGateway, errorUnavailable, "upstream /api/v1/metadata: unexpected entry for %q: %v", family, err)
			}
			if familyVisible(family, entry.Type, has) {
				kept = append(kept, md)
			}
		}
		if len(kept) > 0 {
			allowed[family] = kept
		}
	}
	body, err := json.Marshal(struct {
		Status string                       `json:"status"`
		Data   map[string][]json.RawMessage `json:"data"`
	}{"success", allowed})
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/json")
	_, err = w.Write(body)
	return err
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
func familyVisible(family, typ string, has map[string]bool) bool {
	if has[family] {
		return true
	}
	for _, suffix := range familySuffixes[typ] {
		if has[family+suffix] {
			return true
		}
	}
	return false
}

// subrequest sends a GET for path with form through next (so it takes the
// same upstreams, health checks and transport as the tenant's request) and
// decodes the "data" of a successful Prometheus API answer into data.
func (h *Handler) subrequest(r *http.Request, path string, form url.Values, next caddyhttp.Handler, data any) error {
	sub := r.Clone(r.Context())
	sub.Method = http.MethodGet
	rebuild(sub, path, form)
	sub.Header.Del("Accept-Encoding")
	rec := &bufferedResponse{header: http.Header{}, status: http.StatusOK}
	if err := next.ServeHTTP(rec, sub); err != nil {
		return err
	}
	var body io.Reader = &rec.body
	if rec.header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(body)
		if err != nil {
			return fmt.Errorf("upstream %s: %w", path, err)
		}
		body = zr
	}
	var resp struct {
		Status string          `json:"status"`
		Error  string          `json:"error"`
		Data   json.RawMessage `json:"data"`
	}
	if err := json.NewDecoder(body).Decode(&resp); err != nil {
		return refuse(http.StatusBadGateway, errorUnavailable, "upstream %s answered %d with no valid JSON: %v", path, rec.status, err)
	}
	if rec.status != http.StatusOK || resp.Status != "success" {
		return refuse(http.StatusBadGateway, errorUnavailable, "upstream %s answered %d: %s", path, rec.status, resp.Error)
	}
	if err := json.Unmarshal(resp.Data, data); err != nil {
		return refuse(http.StatusBadGateway, errorUnavailable, "upstream %s: unexpected data: %v", path, err)
	}
	return nil
}

// bufferedResponse is an http.ResponseWriter that keeps the answer of a
// sub-request in memory, apart from the tenant's own response.
type bufferedResponse struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (b *bufferedResponse) Header() http.Header         { return b.header }
func (b *bufferedResponse) Write(p []byte) (int, error) { return b.body.Write(p) }
func (b *bufferedResponse) WriteHeader(status int)      { b.status = status }
