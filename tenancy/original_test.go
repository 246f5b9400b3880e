package tenancy

import (
	"bufio"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/prom-tenant/caddy-prom-tenant/tenancy/v1alpha1"
)

// The original proxy's objects (testdata/original, copied from its README
// with every field, target type and pattern form) load unchanged from a
// directory, and each does what the original's comment says, or, for
// '{__name__="up",instance=".*"}', the decided literal reading, with a
// warning. The same files go through the real kube-apiserver in
// e2e/original_schema_test.go.

func TestOriginalSchemaLoads(t *testing.T) {
	s := newTestSource(t, "testdata/original")
	if errs := s.Errors(); len(errs) > 0 {
		t.Fatalf("the original's objects are rejected: %v", errs)
	}
	type copy struct {
		object, typ string
		interval    time.Duration
	}
	want := map[string]copy{
		"debug-tenant":       {"debug-tenant-metrics", v1alpha1.TargetPrometheus, 30 * time.Second},
		"external-tenant":    {"external-metrics", v1alpha1.TargetRemoteWrite, 15 * time.Second},
		"my-app-namespace":   {"my-app-metrics", v1alpha1.TargetPrometheus, 30 * time.Second},
		"pattern-tenant":     {},
		"pushgateway-tenant": {"pushgateway-metrics", v1alpha1.TargetPushgateway, 60 * time.Second},
		"secure-tenant":      {"secure-tenant-metrics", v1alpha1.TargetPrometheus, 30 * time.Second},
		"tenant-namespace":   {"tenant-metrics-access", v1alpha1.TargetPrometheus, 30 * time.Second},
	}
	var got []string
	for _, tn := range s.reg.Tenants() {
		got = append(got, tn.Namespace)
		w, ok := want[tn.Namespace]
		if !ok {
			continue
		}
		if w.object == "" {
			if len(tn.RemoteWrites) != 0 {
				t.Errorf("%s: copies, but has no remoteWrite", tn.Namespace)
			}
			continue
		}
		if len(tn.RemoteWrites) != 1 {
			t.Errorf("%s: %d copies, want 1", tn.Namespace, len(tn.RemoteWrites))
			continue
		}
		rw := tn.RemoteWrites[0]
		if rw.Object.Name != w.object || rw.Spec.Target.Type != w.typ || rw.Spec.Interval.Duration != w.interval {
			t.Errorf("%s: copy of %s, type %q every %s; want %s, %q every %s", tn.Namespace, rw.Object.Name,
				rw.Spec.Target.Type, rw.Spec.Interval.Duration, w.object, w.typ, w.interval)
		}
	}
	if len(got) != len(want) {
		t.Errorf("tenants %v, want %d", got, len(want))
	}

	// Every field of the targets reaches the copier as written.
	tenant := func(ns string) *Tenant {
		tn, _ := s.reg.Lookup(ns)
		if tn == nil || len(tn.RemoteWrites) == 0 {
			t.Fatalf("%s: no copy", ns)
		}
		return tn
	}
	full := tenant("tenant-namespace").RemoteWrites[0].Spec
	if p := full.Target.Prometheus; p.ServiceName != "prometheus" || p.ServicePort != 9090 || p.WritePath() != "/api/v1/write" ||
		!full.Enabled || !full.HonorLabels || full.ExtraLabels["tenant"] != "tenant-namespace" || full.ExtraLabels["managed_by"] != "multi-tenant-proxy" {
		t.Errorf("tenant-namespace: remoteWrite %+v, target %+v", full, p)
	}
	if p := tenant("pushgateway-tenant").RemoteWrites[0].Spec.Target.Pushgateway; p.ServiceName != "pushgateway" || p.ServicePort != 9091 || p.JobName != "remote-write-metrics" {
		t.Errorf("pushgateway-tenant: target %+v", p)
	}
	r := tenant("external-tenant").RemoteWrites[0].Spec.Target.RemoteWrite
	if r.URL != "https://external-prometheus.example.com/api/v1/write" || r.Headers["X-Tenant"] != "my-team" ||
		r.BasicAuth.Username != "monitoring-user" || *r.BasicAuth.PasswordSecret != (v1alpha1.SecretKeyRef{Name: "prometheus-auth", Key: "password"}) {
		t.Errorf("external-tenant: target %+v, basic auth %+v", r, r.BasicAuth)
	}
}

func TestOriginalSchemaPatterns(t *testing.T) {
	s := newTestSource(t, "testdata/original")
	ls := labels.FromStrings
	prod := []string{"environment", "production", "team", "webapp"}
	in := func(ns string, kv ...string) labels.Labels { return ls(append(kv, "namespace", ns)...) }
	tests := map[string][]struct {
		series labels.Labels
		want   bool
		why    string
	}{
		"tenant-namespace": {
			{in("tenant-namespace", append(prod, "__name__", "http_requests_total")...), true, "exact name"},
			{in("tenant-namespace", append(prod, "__name__", "http_server_seconds")...), true, "http_.*"},
			{in("tenant-namespace", append(prod, "__name__", "anything", "job", "my-app")...), true, `{job="my-app"}`},
			{in("tenant-namespace", append(prod, "__name__", "node_cpu_seconds_total", "job", "node-exporter")...), true, "name with labels"},
			{in("tenant-namespace", "__name__", "http_requests_total", "environment", "staging", "team", "webapp"), false, "labelSelectors are ANDed"},
			{in("other", append(prod, "__name__", "http_requests_total")...), false, "metricIsolation is ANDed"},
			{in("tenant-namespace", append(prod, "__name__", "up", "instance", "10.0.0.1:9090")...), false, `instance=".*" is literal`},
			{in("tenant-namespace", append(prod, "__name__", "up", "instance", ".*")...), true, `instance=".*" is literal`},
			{in("monitoring", append(prod, "__name__", "node_memory_MemAvailable_bytes", "job", "node-exporter", "container", "kube-rbac-proxy")...), false,
				`namespace="monitoring" and isolation contradict: matchers are ANDed, never replaced`},
		},
		"pattern-tenant": {
			{ls("__name__", "http_requests_total"), true, "exact"},
			{ls("__name__", "up", "instance", "10.0.0.1:9090"), true, "exact up, whatever the instance"},
			{ls("__name__", "prometheus_build_info"), true, "exact"},
			{ls("__name__", "http_x"), true, "http_.*"},
			{ls("__name__", "xhttp_x"), false, "regexes are anchored"},
			{ls("__name__", "a_duration_b"), true, ".*_duration_.*"},
			{ls("__name__", "node_load1"), true, "node_.*"},
			{ls("__name__", "anything", "job", "my-app"), true, `{job="my-app"}`},
			{ls("__name__", "xhttp_requests_total", "method", "GET"), false, "a name with labels is exact"},
			{ls("__name__", "other", "container", "kube-rbac-proxy", "namespace", "monitoring", "job", "node-exporter"), false, "complex selector's names"},
		},
		"my-app-namespace": {
			{in("my-app-namespace", "__name__", "http_request_duration_seconds"), true, "exact"},
			{in("my-app-namespace", "__name__", "up", "job", "my-app"), true, `up{job="my-app"}`},
			{in("my-app-namespace", "__name__", "up", "job", "other"), false, `up{job="my-app"}`},
			{in("other", "__name__", "up", "job", "my-app"), false, "isolated"},
		},
		"secure-tenant": {
			{in("secure-tenant", "__name__", "kube_pod_info"), true, "only pods in secure-tenant"},
			{in("other", "__name__", "kube_pod_info"), false, "only pods in secure-tenant"},
			{in("secure-tenant", "__name__", "kube_node_info"), false, "not listed"},
		},
		"debug-tenant": {
			{in("other", "__name__", "kube_pod_info"), true, "pods from all namespaces"},
			{ls("__name__", "kube_node_info"), true, "all cluster nodes"},
			{in("anywhere", "__name__", "up"), true, "all service health metrics"},
			{ls("__name__", "secret"), false, "not listed"},
		},
	}
	for ns, cases := range tests {
		tn, ok := s.reg.Lookup(ns)
		if !ok {
			t.Errorf("%s: not a tenant", ns)
			continue
		}
		for _, c := range cases {
			if got := tn.Policy.Matches(c.series); got != c.want {
				t.Errorf("%s: %s visible = %v, want %v (%s)", ns, c.series, got, c.want, c.why)
			}
		}
	}

	// The literal reading is visible: each object with a regex-like =
	// value says so, and no other object does.
	warned := map[string][]string{}
	for _, tn := range s.reg.Tenants() {
		for name, w := range tn.Warnings {
			warned[tn.Namespace+"/"+name] = w
		}
	}
	wantWarned := map[string]string{
		"tenant-namespace/tenant-metrics-access": `spec.metrics[3]: instance=".*" is read literally`,
		"pattern-tenant/pattern-types":           `spec.metrics[7]: instance=".*" is read literally`,
	}
	for key, w := range wantWarned {
		if len(warned[key]) != 1 || !strings.HasPrefix(warned[key][0], w) {
			t.Errorf("%s: warnings %q, want one starting %q", key, warned[key], w)
		}
	}
	if len(warned) != len(wantWarned) {
		t.Errorf("warnings on %d objects, want %d: %v", len(warned), len(wantWarned), warned)
	}
}

// invalidFixtures returns each file of testdata/original-invalid with the
// errors its "# want:" lines name.
func invalidFixtures(t *testing.T) map[string][]string {
	t.Helper()
	files, _ := filepath.Glob("testdata/original-invalid/*.yaml")
	if len(files) == 0 {
		t.Fatal("no fixtures")
	}
	out := map[string][]string{}
	for _, f := range files {
		fh, err := os.Open(f)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(fh)
		for sc.Scan() {
			if w, ok := strings.CutPrefix(sc.Text(), "# want: "); ok {
				out[f] = append(out[f], w)
			}
		}
		fh.Close()
		if len(out[f]) == 0 {
			t.Fatalf("%s: no # want: line", f)
		}
	}
	return out
}

// TestOriginalSchemaRefusals: a missing, unknown or contradicting
// target.type, two blocks, or no target at all reject the object, with an
// error naming it and the field.
func TestOriginalSchemaRefusals(t *testing.T) {
	for f, want := range invalidFixtures(t) {
		dir := t.TempDir()
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		writeFile(t, dir, "x.yaml", string(data))
		s := newTestSource(t, dir)
		errs := s.Errors()
		got := ""
		for _, e := range errs {
			got = e.Error()
		}
		lines := strings.Split(got, "\n")
		for i := range lines {
			_, lines[i], _ = strings.Cut(lines[i], ": document 1: ")
		}
		if !slices.Equal(lines, want) {
			t.Errorf("%s: errors\n%s\nwant\n%s", f, strings.Join(lines, "\n"), strings.Join(want, "\n"))
		}
		if len(s.reg.Tenants()) != 0 {
			t.Errorf("%s: the object is in force", f)
		}
	}
}

// TestWarningMessageBounded: the Warning condition stays under the API
// server's 32 KiB limit on a condition message, however many patterns warn.
func TestWarningMessageBounded(t *testing.T) {
	m := newMA("team-a", "many")
	for range 100 {
		m.Spec.Metrics = append(m.Spec.Metrics, `{instance="`+strings.Repeat("a", 1000)+`.*"}`)
	}
	w := m.EqualityWarnings()
	if len(w) != 100 {
		t.Fatalf("%d warnings, want 100", len(w))
	}
	if msg := warningMessage(w[:2]); msg != w[0]+"\n"+w[1] {
		t.Errorf("two warnings: %q", msg)
	}
	msg := warningMessage(w)
	if len(msg) > 32768 || !strings.HasPrefix(msg, w[0]+"\n") || !strings.Contains(msg, " more") {
		t.Errorf("message of %d bytes ending %q", len(msg), msg[len(msg)-20:])
	}
}
