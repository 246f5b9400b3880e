package promtenant

import (
	"net/http"
	"strings"
	"testing"
)

func thanosTestHandler(t *testing.T, replicaLabels ...string) *Handler {
	t.Helper()
	h := newTestHandler(t)
	h.Backend, h.ReplicaLabels, h.BackendParams = "thanos", replicaLabels, []string{"thanos"}
	if err := h.Validate(); err != nil {
		t.Fatal(err)
	}
	h.backend, _ = parseBackend(h.Backend)
	h.backendParams, _ = parseBackendParams(h.BackendParams)
	return h
}

func TestReplicaLabelsValidate(t *testing.T) {
	for _, tc := range []struct {
		h   Handler
		err string
	}{
		{Handler{Backend: "thanos", ReplicaLabels: []string{"replica", "prometheus_replica"}}, ""},
		{Handler{ReplicaLabels: []string{"replica"}}, "replica_labels is only meaningful with backend thanos, not prometheus"},
		{Handler{Backend: "victoriametrics", ReplicaLabels: []string{"replica"}}, "not victoriametrics"},
		{Handler{Backend: "thanos", ReplicaLabels: []string{"a-b"}}, `replica_labels: "a-b": want a label name`},
		{Handler{Backend: "thanos", ReplicaLabels: []string{"__prom_tenant_part__"}}, `replica_labels: "__prom_tenant_part__": a replica label is an external label, never a reserved __ name`},
	} {
		err := tc.h.Validate()
		if (err == nil) != (tc.err == "") || err != nil && !strings.Contains(err.Error(), tc.err) {
			t.Errorf("%s %q: Validate = %v, want %q", tc.h.Backend, tc.h.ReplicaLabels, err, tc.err)
		}
	}
}

// TestThanosReplicaLabelValues: the values of a replica label are answered
// with none, without asking Thanos (whose label APIs do not deduplicate);
// other labels, other backends, and requests that turn deduplication off or
// name other replica labels are forwarded.
func TestThanosReplicaLabelValues(t *testing.T) {
	thanos := thanosTestHandler(t, "replica", "prometheus_replica")
	prom := newTestHandler(t)
	for _, tc := range []struct {
		h       *Handler
		path    string
		locally bool
	}{
		{thanos, "/api/v1/label/replica/values", true},
		{thanos, "/api/v1/label/prometheus_replica/values?match[]=up&start=1&end=2", true},
		{thanos, "/api/v1/label/U__replica/values", true},
		{thanos, "/api/v1/label/replica/values?dedup=true", true},
		{thanos, "/api/v1/label/job/values", false},
		{thanos, "/api/v1/label/replica/values?dedup=false", false},
		{thanos, "/api/v1/label/replica/values?replicaLabels[]=rule_replica", false},
		{thanos, "/api/v1/label/rule_replica/values?replicaLabels[]=rule_replica", true},
		{prom, "/api/v1/label/replica/values", false},
	} {
		u := &upstream{}
		w := serve(t, tc.h, u, get(tc.path, "team-a"))
		if w.Code != http.StatusOK {
			t.Errorf("%s: %d %s", tc.path, w.Code, w.Body)
			continue
		}
		if locally := u.got == nil; locally != tc.locally {
			t.Errorf("%s (backend %s): answered locally %v, want %v", tc.path, tc.h.backend, locally, tc.locally)
		}
		if tc.locally {
			if got, want := w.Body.String(), `{"status":"success","data":[]}`; got != want || w.Header().Get("Content-Type") != "application/json" {
				t.Errorf("%s: %s (%s), want %s", tc.path, got, w.Header().Get("Content-Type"), want)
			}
		}
	}

	// The match[] is enforced first: a request Prometheus would refuse is
	// refused here too.
	w := serve(t, thanos, &upstream{}, get("/api/v1/label/replica/values?match[]=up{", "team-a"))
	if w.Code != http.StatusBadRequest {
		t.Errorf("bad match[]: %d %s", w.Code, w.Body)
	}
}

// TestThanosRefusals: with backend thanos, /federate and /api/v1/metadata
// are refused before anything is sent; with Prometheus they are served.
func TestThanosRefusals(t *testing.T) {
	thanos := thanosTestHandler(t)
	for _, tc := range []struct{ path, msg string }{
		{"/federate?match[]=up", "Thanos Query has no /federate; copy the tenant's series with prom_remote_write instead"},
		{"/api/v1/metadata", "Thanos Query has no /api/v1/targets/metadata"},
		{"/api/v1/metadata?metric=up", "Thanos Query has no /api/v1/targets/metadata"},
	} {
		u := &upstream{}
		w := serve(t, thanos, u, get(tc.path, "team-a"))
		if w.Code != http.StatusNotFound || u.got != nil || !strings.Contains(refusalText(t, w.Body.Bytes()), tc.msg) {
			t.Errorf("%s: %d %s (upstream reached: %v)", tc.path, w.Code, w.Body, u.got != nil)
		}
	}
	u := &upstream{}
	if w := serve(t, newTestHandler(t), u, get("/federate?match[]=up", "team-a")); w.Code != http.StatusOK || u.got == nil {
		t.Errorf("/federate with backend prometheus: %d %s", w.Code, w.Body)
	}
}

// TestThanosLabelNames: Thanos's /api/v1/labels answer loses the replica
// labels (its other answers have none); the rest of the answer, other
// endpoints, other backends, dedup=false and error answers pass as they
// are; a success the proxy cannot read, or too large to hold, is refused.
func TestThanosLabelNames(t *testing.T) {
	thanos := thanosTestHandler(t, "replica", "prometheus_replica")
	const answer = `{"status":"success","data":["__name__","job","namespace","prometheus_replica","replica"],"warnings":["partial response"]}`
	const corrected = `{"data":["__name__","job","namespace"],"status":"success","warnings":["partial response"]}`
	big := `{"status":"success","data":["replica"` + strings.Repeat(`,"x"`, 5<<20/4) + `]}` // 5 MiB
	for _, tc := range []struct {
		name     string
		h        *Handler
		req      *http.Request
		upstream *upstream
		want     string
	}{
		{"GET", thanos, get("/api/v1/labels?match[]=up", "team-a"), answering(200, "application/json", "", []byte(answer)), corrected},
		{"POST", thanos, post("/api/v1/labels", "team-a", "start=1"), answering(200, "application/json", "", []byte(answer)), corrected},
		{"replicaLabels[]", thanos, get("/api/v1/labels?replicaLabels[]=job", "team-a"), answering(200, "application/json", "", []byte(answer)),
			`{"data":["__name__","namespace","prometheus_replica","replica"],"status":"success","warnings":["partial response"]}`},
		{"dedup=false", thanos, get("/api/v1/labels?dedup=false", "team-a"), answering(200, "application/json", "", []byte(answer)), answer},
		{"backend prometheus", newTestHandler(t), get("/api/v1/labels", "team-a"), answering(200, "application/json", "", []byte(answer)), answer},
		{"series", thanos, get("/api/v1/series?match[]=up", "team-a"), answering(200, "application/json", "", []byte(answer)), answer},
		{"error envelope", thanos, get("/api/v1/labels", "team-a"),
			answering(422, "application/json", "", []byte(`{"status":"error","errorType":"execution","error":"replica"}`)),
			`{"status":"error","errorType":"execution","error":"replica"}`},
		// Query Frontend may send JSON as text/plain: read all the same.
		{"text/plain", thanos, get("/api/v1/labels", "team-a"), answering(200, "text/plain", "", []byte(answer)), corrected},
		{"gzip", thanos, get("/api/v1/labels", "team-a"), answering(200, "application/json", "gzip", gzipped(answer)), corrected},
		{"no names", thanos, get("/api/v1/labels", "team-a"), answering(200, "application/json", "", []byte(`{"status":"success","data":null}`)), `{"status":"success","data":null}`},
		// What cannot be corrected is refused: never the replica labels.
		{"not an envelope", thanos, get("/api/v1/labels", "team-a"), answering(200, "application/json", "", []byte(`["replica"]`)),
			`{"status":"error","errorType":"unavailable","error":"Thanos Query's /api/v1/labels answer is not Prometheus's envelope with a list of names, so the replica labels cannot be taken out of it"}`},
		{"cut", thanos, get("/api/v1/labels", "team-a"), answering(200, "application/json", "", []byte(answer[:40])),
			`{"status":"error","errorType":"unavailable","error":"Thanos Query's /api/v1/labels answer is not Prometheus's envelope with a list of names, so the replica labels cannot be taken out of it"}`},
		{"too large", thanos, get("/api/v1/labels", "team-a"), answering(200, "application/json", "", []byte(big)),
			`{"status":"error","errorType":"execution","error":"Thanos Query's /api/v1/labels answer is over 4194304 bytes, which the proxy holds to take the replica labels out: narrow it with match[] or start and end"}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.req.Header.Set("Accept-Encoding", "gzip")
			w := serve(t, tc.h, tc.upstream, tc.req)
			if got := w.Body.String(); got != tc.want {
				t.Errorf("answer %s, want %s", truncate(got, 300), truncate(tc.want, 300))
			}
			if tc.want == corrected {
				if ce := w.Header().Get("Content-Encoding"); ce != "" {
					t.Errorf("Content-Encoding %q for a decoded answer", ce)
				}
			}
			if tc.name == "GET" || tc.name == "POST" || tc.name == "replicaLabels[]" {
				if cl := w.Header().Get("Content-Length"); cl != "" {
					t.Errorf("Content-Length %s kept for a corrected answer", cl)
				}
				if ae := tc.upstream.got.Header.Get("Accept-Encoding"); ae != "" {
					t.Errorf("Accept-Encoding %q sent for an answer to correct", ae)
				}
			}
		})
	}
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
