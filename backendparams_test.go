package promtenant

import (
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
)

func TestParseBackendParams(t *testing.T) {
	for _, tc := range []struct {
		names   []string
		allowed []string
		err     string
	}{
		{names: nil},
		{names: []string{"thanos"}, allowed: []string{"dedup", "engine", "max_source_resolution", "partial_response", "replicaLabels[]"}},
		{names: []string{"victoriametrics"}, allowed: []string{"latency_offset", "nocache", "round_digits"}},
		{names: []string{"dedup", "partial_response"}, allowed: []string{"dedup", "partial_response"}},
		{names: []string{"thanos", "nocache"}, allowed: []string{"dedup", "engine", "max_source_resolution", "nocache", "partial_response", "replicaLabels[]"}},
		{names: []string{"timeout_extra"}, err: `backend_params: unknown parameter or preset "timeout_extra": use the presets thanos, victoriametrics or the parameters dedup, engine, latency_offset, max_source_resolution, nocache, partial_response, replicaLabels[], round_digits`},
		{names: []string{"dedup", "extra_label"}, err: `backend_params: "extra_label" is an enforcement parameter of VictoriaMetrics and is never let through`},
		{names: []string{"extra_filters[]"}, err: `"extra_filters[]" is an enforcement parameter`},
		{names: []string{"extra_filters"}, err: `"extra_filters" is an enforcement parameter`},
		{names: []string{"analyze"}, err: `backend_params: "analyze" is never let through: Thanos Query's analyze exposes the upstream's store addresses and the rewritten query`},
	} {
		allowed, err := parseBackendParams(tc.names)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%q: error %v, want %q", tc.names, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", tc.names, err)
			continue
		}
		var got []string
		for n := range allowed {
			got = append(got, n)
		}
		slices.Sort(got)
		if !slices.Equal(got, tc.allowed) {
			t.Errorf("%q allows %q, want %q", tc.names, got, tc.allowed)
		}
		if allowed["replicaLabels[]"] != multi && slices.Contains(got, "replicaLabels[]") {
			t.Errorf("replicaLabels[] is single-valued")
		}
	}
}

func TestBackendParamsValidate(t *testing.T) {
	for _, tc := range []struct {
		h   Handler
		err string
	}{
		{Handler{Backend: "thanos", BackendParams: []string{"thanos"}}, ""},
		{Handler{Backend: "thanos", BackendParams: []string{"dedup", "replicaLabels[]"}}, ""},
		{Handler{Backend: "victoriametrics", BackendParams: []string{"victoriametrics"}}, ""},
		// A parameter of another engine than backend: nothing would read it.
		{Handler{BackendParams: []string{"thanos"}}, `backend_params: dedup is a Thanos parameter; set backend thanos (the backend is prometheus, which does not read it)`},
		{Handler{Backend: "victoriametrics", BackendParams: []string{"dedup"}}, `backend_params: dedup is a Thanos parameter; set backend thanos (the backend is victoriametrics`},
		{Handler{Backend: "thanos", BackendParams: []string{"thanos", "nocache"}}, `backend_params: nocache is a VictoriaMetrics parameter; set backend victoriametrics (the backend is thanos`},
		{Handler{BackendParams: []string{"round_digits"}}, `round_digits is a VictoriaMetrics parameter; set backend victoriametrics`},
		{Handler{Backend: "thanos", BackendParams: []string{"analyze"}}, `"analyze" is never let through`},
		{Handler{Backend: "thanos", ReplicaLabels: []string{"__name__"}}, `replica_labels: "__name__": a replica label is an external label, never a reserved __ name`},
		{Handler{BackendParams: []string{"bogus"}}, `unknown parameter or preset "bogus"`},
		{Handler{BackendParams: []string{"extra_label"}}, `"extra_label" is an enforcement parameter`},
	} {
		err := tc.h.Validate()
		if (err == nil) != (tc.err == "") || err != nil && !strings.Contains(err.Error(), tc.err) {
			t.Errorf("%v: Validate = %v, want %q", tc.h.BackendParams, err, tc.err)
		}
	}
}

// grafanaThanosParams are a Grafana Prometheus data source's "Custom query
// parameters" for Thanos, as Grafana appends them to its requests.
const grafanaThanosParams = "dedup=false&partial_response=true&max_source_resolution=auto"

// TestBackendParamsForwarded sends Grafana's requests with a Thanos data
// source's custom query parameters: refused without backend_params, naming
// the option; forwarded as they are with backend_params thanos, on every
// endpoint Grafana sends them to, GET and POST. partial_response=false
// also reaches series, labels and label values (Thanos reads it there and
// defaults to true); partial_response=true is dropped there.
func TestBackendParamsForwarded(t *testing.T) {
	for _, partial := range []string{"true", "false"} {
		t.Run("partial_response="+partial, func(t *testing.T) { testBackendParamsForwarded(t, partial) })
	}
}

func testBackendParamsForwarded(t *testing.T, partial string) {
	grafanaThanosParams := strings.Replace(grafanaThanosParams, "partial_response=true", "partial_response="+partial, 1)
	plain := newTestHandler(t)
	allowing := newTestHandler(t)
	allowing.Backend, allowing.backend = "thanos", backendThanos
	allowing.BackendParams = []string{"thanos"}
	allowing.backendParams, _ = parseBackendParamsFor(backendThanos, allowing.BackendParams)
	// Where each is forwarded; on the other endpoints it is dropped.
	forwarded := map[string][]string{
		"/api/v1/query":           {"dedup", "partial_response", "max_source_resolution"},
		"/api/v1/query_range":     {"dedup", "partial_response", "max_source_resolution"},
		"/api/v1/query_exemplars": {"dedup", "partial_response"},
		"/api/v1/series":          {"dedup"},
	}
	if partial == "false" {
		for _, ep := range []string{"/api/v1/series", "/api/v1/labels", "/api/v1/label/job/values", "/api/v1/label/__name__/values"} {
			forwarded[ep] = append(forwarded[ep], "partial_response")
		}
	}

	q := "query=" + url.QueryEscape("sum(up)")
	for _, req := range []func() *http.Request{
		func() *http.Request { return get("/api/v1/query?"+q+"&time=100&"+grafanaThanosParams, "team-a") },
		func() *http.Request { return post("/api/v1/query", "team-a", q+"&time=100&"+grafanaThanosParams) },
		func() *http.Request {
			return post("/api/v1/query_range", "team-a", q+"&start=1&end=100&step=15&"+grafanaThanosParams)
		},
		func() *http.Request {
			return get("/api/v1/query_exemplars?"+q+"&start=1&end=100&"+grafanaThanosParams, "team-a")
		},
		func() *http.Request {
			return get("/api/v1/series?match[]=up&start=1&end=2&"+grafanaThanosParams, "team-a")
		},
		func() *http.Request {
			return post("/api/v1/labels", "team-a", "match[]=up&start=1&"+grafanaThanosParams)
		},
		func() *http.Request { return get("/api/v1/label/job/values?match[]=up&"+grafanaThanosParams, "team-a") },
		func() *http.Request { return get("/api/v1/label/__name__/values?"+grafanaThanosParams, "team-a") },
		func() *http.Request { return get("/api/v1/status/buildinfo?"+grafanaThanosParams, "team-a") },
	} {
		r := req()
		name := r.Method + " " + r.URL.Path
		t.Run(name, func(t *testing.T) {
			u := &upstream{}
			w := serve(t, plain, u, req())
			if w.Code != http.StatusBadRequest || u.got != nil ||
				!strings.Contains(refusalText(t, w.Body.Bytes()), `is not allowed: the prom_tenant option backend_params lets it through`) {
				t.Errorf("without backend_params: %d %s (upstream reached: %v)", w.Code, w.Body, u.got != nil)
			}

			u = &upstream{}
			w = serve(t, allowing, u, req())
			if w.Code != http.StatusOK || u.got == nil {
				t.Fatalf("with backend_params thanos: %d %s", w.Code, w.Body)
			}
			f := u.form(t)
			for k, v := range map[string]string{"dedup": "false", "partial_response": partial, "max_source_resolution": "auto"} {
				want := []string{v}
				if !slices.Contains(forwarded[r.URL.Path], k) {
					want = nil
				}
				if got := f[k]; !slices.Equal(got, want) {
					t.Errorf("upstream %s = %q, want %q; form %v", k, got, want, f)
				}
			}
			if m := f["match[]"]; len(m) > 0 && !strings.Contains(m[0], `namespace="team-a"`) {
				t.Errorf("match[] not enforced: %q", m)
			}
			if qq := f.Get("query"); qq != "" && !strings.Contains(qq, `namespace="team-a"`) {
				t.Errorf("query not enforced: %q", qq)
			}
		})
	}
}

func TestBackendParamsChecked(t *testing.T) {
	h := newTestHandler(t)
	h.BackendParams = []string{"thanos", "victoriametrics"}
	h.backendParams, _ = parseBackendParams(h.BackendParams)
	q := "/api/v1/query?query=up&"
	for _, tc := range []struct {
		params string
		status int
		msg    string
	}{
		{"replicaLabels[]=replica&replicaLabels[]=prometheus_replica", 200, ""},
		{"dedup=1&engine=thanos&max_source_resolution=5m&nocache=1&round_digits=3&latency_offset=30s", 200, ""},
		{"max_source_resolution=300.5&latency_offset=1h30m", 200, ""},
		// Go's durations, which Thanos does not read.
		{"max_source_resolution=1.5h", 400, `invalid max_source_resolution "1.5h": want auto, or a duration`},
		{"latency_offset=1.5m", 400, `invalid latency_offset "1.5m": want a duration`},
		{"dedup=maybe", 400, `invalid dedup "maybe": want true or false`},
		{"partial_response=yes", 400, `invalid partial_response "yes": want true or false`},
		// analyze shows the stores' addresses and the rewritten query.
		{"analyze=true", 400, `parameter "analyze" is never forwarded: Thanos Query's analyze exposes the upstream's store addresses and the rewritten query, with the tenant's policy in it`},
		{"max_source_resolution=soon", 400, `invalid max_source_resolution "soon": want auto, or a duration`},
		{"max_source_resolution=-5m", 400, `invalid max_source_resolution "-5m"`},
		{"engine=mimir", 400, `invalid engine "mimir": want prometheus or thanos`},
		{"round_digits=two", 400, `invalid round_digits "two": want an integer`},
		{"latency_offset=later", 400, `invalid latency_offset "later": want a duration`},
		{"replicaLabels[]=a-b", 400, `invalid replicaLabels[] "a-b": want a label name`},
		{"replicaLabels[]=__name__", 400, `invalid replicaLabels[] "__name__": a replica label is an external label, never a reserved __ name`},
		{"replicaLabels[]=__prom_tenant_part__", 400, `invalid replicaLabels[] "__prom_tenant_part__"`},
		{"dedup=true&dedup=false", 400, `parameter "dedup" is given 2 times; it takes one value`},
		// Enforcement parameters: refused whatever backend_params says.
		{"extra_label=namespace=team-b", 400, `parameter "extra_label" is VictoriaMetrics's own tenancy enforcement and is never forwarded`},
		{"extra_filters[]=" + url.QueryEscape(`{namespace="team-b"}`), 400, `parameter "extra_filters[]" is VictoriaMetrics's own tenancy enforcement`},
		{"extra_filters=" + url.QueryEscape(`{namespace="team-b"}`), 400, `parameter "extra_filters" is VictoriaMetrics's own tenancy enforcement`},
		// Not in the catalogue: refused as any unknown parameter.
		{"storeMatch[]=" + url.QueryEscape(`{__address__="x"}`), 400, `unknown parameter "storeMatch[]" for /api/v1/query`},
	} {
		u := &upstream{}
		w := serve(t, h, u, get(q+tc.params, "team-a"))
		if w.Code != tc.status || !strings.Contains(refusalText(t, w.Body.Bytes()), tc.msg) {
			t.Errorf("%s: %d %s, want %d %q", tc.params, w.Code, w.Body, tc.status, tc.msg)
		}
		if tc.status != 200 && u.got != nil {
			t.Errorf("%s: refused but forwarded", tc.params)
		}
		if tc.status == 200 {
			if got := u.form(t)["replicaLabels[]"]; strings.Contains(tc.params, "replicaLabels") && len(got) != 2 {
				t.Errorf("replicaLabels[] upstream: %q", got)
			}
		}
	}
}

// TestTenantHeadersNeverForwarded: the headers with which Thanos, Mimir or
// Cortex take a tenant from the client are dropped from every request,
// whatever backend_params allows.
func TestTenantHeadersNeverForwarded(t *testing.T) {
	h := newTestHandler(t)
	h.Backend, h.backend = "thanos", backendThanos
	h.BackendParams = []string{"thanos"}
	h.backendParams, _ = parseBackendParams(h.BackendParams)
	for _, r := range []*http.Request{
		get("/api/v1/query?query=up&dedup=false", "team-a"),
		post("/api/v1/series", "team-a", "match[]=up&partial_response=true"),
		get("/api/v1/label/job/values", "team-a"),
	} {
		for _, hdr := range []string{"X-Scope-OrgID", "THANOS-TENANT", "Thanos-Tenant"} {
			r.Header.Add(hdr, "team-b")
		}
		u := &upstream{}
		if w := serve(t, h, u, r); w.Code != http.StatusOK {
			t.Fatalf("%s: %d %s", r.URL, w.Code, w.Body)
		}
		for _, hdr := range []string{"X-Scope-OrgID", "Thanos-Tenant", "X-Tenant-Namespace"} {
			if v := u.got.Header.Values(hdr); len(v) > 0 {
				t.Errorf("%s: header %s forwarded: %q", r.URL.Path, hdr, v)
			}
		}
	}
}

// refusalText is the error of an answer in Prometheus's envelope; "" for
// any other answer.
func refusalText(t *testing.T, body []byte) string {
	t.Helper()
	var env struct{ Status, Error string }
	if json.Unmarshal(body, &env) != nil || env.Status != "error" {
		return ""
	}
	return env.Error
}
