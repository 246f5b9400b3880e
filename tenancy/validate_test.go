package tenancy

import (
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestValidateValid(t *testing.T) {
	m := newMA("team-a", "app-metrics", "up", "http_.*", `{job="x"}`, ".*", `{}`)
	m.Spec.MetricIsolation = true
	m.Spec.LabelSelectors = map[string]string{"job": "api", "env": ""}
	m.Spec.RemoteWrite = &RemoteWriteSpec{
		Enabled:     true,
		Interval:    &metav1.Duration{Duration: 5 * time.Second},
		ExtraLabels: map[string]string{"source": "proxy"},
		Prometheus:  &PrometheusTarget{ServiceName: "prometheus", Port: 9090},
	}
	if err := m.Validate(); err != nil {
		t.Fatal(err)
	}
	if got := m.Spec.RemoteWrite.Prometheus.WritePath(); got != "/api/v1/write" {
		t.Errorf("default path %q", got)
	}
}

func TestValidateErrors(t *testing.T) {
	rw := func(spec RemoteWriteSpec) func(*MetricAccess) {
		return func(m *MetricAccess) { m.Spec.RemoteWrite = &spec }
	}
	tests := []struct {
		name   string
		modify func(*MetricAccess)
		want   []string // substrings of the joined error, in addition to the object
	}{
		{"bad regex", func(m *MetricAccess) { m.Spec.Metrics = []string{"up", "x", "http_("} },
			[]string{`team-a/app-metrics: spec.metrics[2]: invalid regex "http_("`}},
		{"bad selector", func(m *MetricAccess) { m.Spec.Metrics = []string{`up{job=~"("}`} },
			[]string{`spec.metrics[0]: invalid selector`}},
		{"empty metrics", func(m *MetricAccess) { m.Spec.Metrics = nil },
			[]string{"spec.metrics: at least one pattern is required"}},
		{"empty pattern", func(m *MetricAccess) { m.Spec.Metrics = []string{"up", ""} },
			[]string{"spec.metrics[1]: empty pattern"}},
		{"oversized pattern", func(m *MetricAccess) { m.Spec.Metrics = []string{strings.Repeat("a|", 600)} },
			[]string{"spec.metrics[0]: oversized regex"}},
		{"wrong kind", func(m *MetricAccess) { m.Kind = "ConfigMap" },
			[]string{`kind: must be "MetricAccess", got "ConfigMap"`}},
		{"wrong apiVersion", func(m *MetricAccess) { m.APIVersion = "observability.ethos.io/v1" },
			[]string{`apiVersion: must be "observability.ethos.io/v1alpha1"`}},
		{"missing namespace", func(m *MetricAccess) { m.Namespace = "" },
			[]string{"<no namespace>/app-metrics: metadata.namespace: required"}},
		{"invalid name", func(m *MetricAccess) { m.Name = "App_Metrics" },
			[]string{`team-a/App_Metrics: metadata.name: invalid value "App_Metrics"`}},
		{"bad label name", func(m *MetricAccess) { m.Spec.LabelSelectors = map[string]string{"a-b": "x"} },
			[]string{`spec.labelSelectors: invalid label name "a-b"`}},
		{"reserved grouping label", rw(RemoteWriteSpec{Pushgateway: &PushgatewayTarget{URL: "http://pgw:9091", JobName: "j", GroupingKey: map[string]string{"__name__": "x"}}}),
			[]string{`spec.remoteWrite.pushgateway.groupingKey: label "__name__" is reserved`}},
		{"job in grouping key", rw(RemoteWriteSpec{Pushgateway: &PushgatewayTarget{URL: "http://pgw:9091", JobName: "j", GroupingKey: map[string]string{"job": "x"}}}),
			[]string{`spec.remoteWrite.pushgateway.groupingKey: job is jobName's`}},
		{"reserved extra label", rw(RemoteWriteSpec{ExtraLabels: map[string]string{"__name__": "x"}}),
			[]string{`spec.remoteWrite.extraLabels: label "__name__" is reserved`}},
		{"empty extra label", rw(RemoteWriteSpec{ExtraLabels: map[string]string{"env": ""}}),
			[]string{`spec.remoteWrite.extraLabels[env]: empty value`}},
		{"two targets", rw(RemoteWriteSpec{Enabled: true,
			Prometheus:  &PrometheusTarget{ServiceName: "p", Port: 9090},
			RemoteWrite: &RemoteWriteTarget{URL: "https://x/api/v1/write"}}),
			[]string{"spec.remoteWrite: exactly one target", "prometheus, remoteWrite"}},
		{"enabled without target", rw(RemoteWriteSpec{Enabled: true}),
			[]string{"spec.remoteWrite: enabled requires exactly one target"}},
		{"short interval", rw(RemoteWriteSpec{Interval: &metav1.Duration{Duration: time.Second}}),
			[]string{"spec.remoteWrite.interval: must be at least 5s"}},
		{"prometheus target", rw(RemoteWriteSpec{Prometheus: &PrometheusTarget{ServiceName: "p.other", Path: "write"}}),
			[]string{"spec.remoteWrite.prometheus.serviceName: invalid value", "spec.remoteWrite.prometheus.port", "spec.remoteWrite.prometheus.path"}},
		{"pushgateway without job", rw(RemoteWriteSpec{Pushgateway: &PushgatewayTarget{URL: "http://pg:9091"}}),
			[]string{"spec.remoteWrite.pushgateway.jobName: required"}},
		{"pushgateway url and service", rw(RemoteWriteSpec{Pushgateway: &PushgatewayTarget{URL: "http://pg:9091", ServiceName: "pg", JobName: "j"}}),
			[]string{"spec.remoteWrite.pushgateway: url and serviceName/port are mutually exclusive"}},
		{"pushgateway neither", rw(RemoteWriteSpec{Pushgateway: &PushgatewayTarget{JobName: "j"}}),
			[]string{"spec.remoteWrite.pushgateway: either url or serviceName and port"}},
		{"remote write target", rw(RemoteWriteSpec{RemoteWrite: &RemoteWriteTarget{
			Headers:         map[string]string{"Bad Header": "x"},
			BasicAuth:       &BasicAuth{PasswordFile: "/p", PasswordSecretRef: &SecretKeyRef{Name: "s", Key: "k"}},
			TLS:             &TLSConfig{CertFile: "c"},
			ProtocolVersion: "3.0",
		}}), []string{
			"spec.remoteWrite.remoteWrite.url: required",
			`spec.remoteWrite.remoteWrite.headers: invalid header name "Bad Header"`,
			"spec.remoteWrite.remoteWrite.basicAuth.username: required",
			"spec.remoteWrite.remoteWrite.basicAuth: passwordSecretRef and passwordFile are mutually exclusive",
			"spec.remoteWrite.remoteWrite.tls: certFile and keyFile must be set together",
			`spec.remoteWrite.remoteWrite.protocolVersion: must be "1.0" or "2.0", got "3.0"`,
		}},
		{"remote write url scheme", rw(RemoteWriteSpec{RemoteWrite: &RemoteWriteTarget{URL: "ftp://x"}}),
			[]string{`spec.remoteWrite.remoteWrite.url: URL "ftp://x" must use http or https`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := newMA("team-a", "app-metrics", "up")
			tt.modify(m)
			err := m.Validate()
			wantErrContains(t, err, tt.want...)
			for _, e := range joined(err) {
				if !strings.HasPrefix(e.Error(), objectRef(m)+": ") {
					t.Errorf("error %q does not start with the object %q", e, objectRef(m))
				}
			}
		})
	}
}

func TestValidateReportsAllProblems(t *testing.T) {
	m := newMA("", "x", "http_(", "", "ok")
	m.Kind = ""
	errs := joined(m.Validate())
	want := []string{
		"<no namespace>/x: kind: must be",
		"<no namespace>/x: metadata.namespace: required",
		"<no namespace>/x: spec.metrics[0]: invalid regex",
		"<no namespace>/x: spec.metrics[1]: empty pattern",
	}
	if len(errs) != len(want) {
		t.Fatalf("got %d errors, want %d: %v", len(errs), len(want), errs)
	}
	for i, w := range want {
		if !strings.HasPrefix(errs[i].Error(), w) {
			t.Errorf("error %d = %q, want prefix %q", i, errs[i], w)
		}
	}
}

// A rejected target URL never shows its password: the message reaches the
// object's status, the logs and the admin API.
func TestValidateURLHidesPassword(t *testing.T) {
	for _, raw := range []string{"ftp://user:s3cret@host/x", "http://user:s3cret@host:bad port/", "http://user:s3cret@/x"} {
		v := &validator{}
		v.url("spec.remoteWrite.remoteWrite.url", raw)
		if len(v.errs) == 0 {
			t.Errorf("%s: accepted", raw)
		}
		for _, e := range v.errs {
			if strings.Contains(e.Error(), "s3cret") {
				t.Errorf("%s: error shows the password: %v", raw, e)
			}
		}
	}
}
