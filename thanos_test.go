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
		{Handler{Backend: "thanos", ReplicaLabels: []string{"a-b"}}, `replica_labels: "a-b" is not a label name`},
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
