package v1alpha1

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
		Target:      &RemoteWriteTargetSpec{Type: TargetPrometheus, Prometheus: &PrometheusTarget{ServiceName: "prometheus", ServicePort: 9090}},
	}
	if err := m.Validate(); err != nil {
		t.Fatal(err)
	}
	if got := m.Spec.RemoteWrite.Target.Prometheus.WritePath(); got != "/api/v1/write" {
		t.Errorf("default path %q", got)
	}
}

func TestValidateErrors(t *testing.T) {
	rw := func(spec RemoteWriteSpec) func(*MetricAccess) {
		return func(m *MetricAccess) { m.Spec.RemoteWrite = &spec }
	}
	target := func(typ string, t *RemoteWriteTargetSpec) func(*MetricAccess) {
		t.Type = typ
		return rw(RemoteWriteSpec{Enabled: true, Target: t})
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
		{"reserved grouping label", target(TargetPushgateway, &RemoteWriteTargetSpec{Pushgateway: &PushgatewayTarget{URL: "http://pgw:9091", JobName: "j", GroupingKey: map[string]string{"__name__": "x"}}}),
			[]string{`spec.remoteWrite.target.pushgateway.groupingKey: label "__name__" is reserved`}},
		{"job in grouping key", target(TargetPushgateway, &RemoteWriteTargetSpec{Pushgateway: &PushgatewayTarget{URL: "http://pgw:9091", JobName: "j", GroupingKey: map[string]string{"job": "x"}}}),
			[]string{`spec.remoteWrite.target.pushgateway.groupingKey: job is jobName's`}},
		{"reserved extra label", rw(RemoteWriteSpec{ExtraLabels: map[string]string{"__name__": "x"}}),
			[]string{`spec.remoteWrite.extraLabels: label "__name__" is reserved`}},
		{"empty extra label", rw(RemoteWriteSpec{ExtraLabels: map[string]string{"env": ""}}),
			[]string{`spec.remoteWrite.extraLabels[env]: empty value`}},
		{"enabled without target", rw(RemoteWriteSpec{Enabled: true}),
			[]string{`spec.remoteWrite.target: required when enabled: a type ("prometheus", "pushgateway", "remote_write") and its block`}},
		{"missing type", target("", &RemoteWriteTargetSpec{Prometheus: &PrometheusTarget{ServiceName: "p", ServicePort: 9090}}),
			[]string{`spec.remoteWrite.target.type: required: one of "prometheus", "pushgateway", "remote_write" (blocks set: prometheus)`}},
		{"unknown type", target("Prometheus", &RemoteWriteTargetSpec{Prometheus: &PrometheusTarget{ServiceName: "p", ServicePort: 9090}}),
			[]string{`spec.remoteWrite.target.type: unknown type "Prometheus": must be one of "prometheus", "pushgateway", "remote_write"`}},
		{"remoteWrite as type", target("remoteWrite", &RemoteWriteTargetSpec{RemoteWrite: &RemoteWriteTarget{URL: "https://x/api/v1/write"}}),
			[]string{`spec.remoteWrite.target.type: unknown type "remoteWrite"`}},
		{"type without its block", target(TargetPushgateway, &RemoteWriteTargetSpec{Prometheus: &PrometheusTarget{ServiceName: "p", ServicePort: 9090}}),
			[]string{`spec.remoteWrite.target.prometheus: set, but type is "pushgateway", which uses spec.remoteWrite.target.pushgateway only`,
				`spec.remoteWrite.target.pushgateway: required for type "pushgateway"`}},
		{"two blocks", target(TargetPrometheus, &RemoteWriteTargetSpec{
			Prometheus:  &PrometheusTarget{ServiceName: "p", ServicePort: 9090},
			RemoteWrite: &RemoteWriteTarget{URL: "https://x/api/v1/write"}}),
			[]string{`spec.remoteWrite.target.remoteWrite: set, but type is "prometheus", which uses spec.remoteWrite.target.prometheus only: remove remoteWrite or change type`}},
		{"remote_write without its block", target(TargetRemoteWrite, &RemoteWriteTargetSpec{}),
			[]string{`spec.remoteWrite.target.remoteWrite: required for type "remote_write": url`}},
		{"short interval", rw(RemoteWriteSpec{Interval: &metav1.Duration{Duration: time.Second}}),
			[]string{"spec.remoteWrite.interval: must be at least 5s"}},
		{"prometheus target", target(TargetPrometheus, &RemoteWriteTargetSpec{Prometheus: &PrometheusTarget{ServiceName: "p.other", Path: "write"}}),
			[]string{"spec.remoteWrite.target.prometheus.serviceName: invalid value", "spec.remoteWrite.target.prometheus.servicePort", "spec.remoteWrite.target.prometheus.path"}},
		{"pushgateway without job", target(TargetPushgateway, &RemoteWriteTargetSpec{Pushgateway: &PushgatewayTarget{URL: "http://pg:9091"}}),
			[]string{"spec.remoteWrite.target.pushgateway.jobName: required"}},
		{"pushgateway url and service", target(TargetPushgateway, &RemoteWriteTargetSpec{Pushgateway: &PushgatewayTarget{URL: "http://pg:9091", ServiceName: "pg", JobName: "j"}}),
			[]string{"spec.remoteWrite.target.pushgateway: url and serviceName/servicePort are mutually exclusive"}},
		{"pushgateway neither", target(TargetPushgateway, &RemoteWriteTargetSpec{Pushgateway: &PushgatewayTarget{JobName: "j"}}),
			[]string{"spec.remoteWrite.target.pushgateway: either serviceName and servicePort or url"}},
		{"remote write target", target(TargetRemoteWrite, &RemoteWriteTargetSpec{RemoteWrite: &RemoteWriteTarget{
			Headers:         map[string]string{"Bad Header": "x"},
			BasicAuth:       &BasicAuth{PasswordFile: "/p", PasswordSecret: &SecretKeyRef{Name: "s", Key: "k"}},
			TLS:             &TLSConfig{CertFile: "c"},
			ProtocolVersion: "3.0",
		}}), []string{
			"spec.remoteWrite.target.remoteWrite.url: required",
			`spec.remoteWrite.target.remoteWrite.headers: invalid header name "Bad Header"`,
			"spec.remoteWrite.target.remoteWrite.basicAuth.username: required",
			"spec.remoteWrite.target.remoteWrite.basicAuth: passwordSecret and passwordFile are mutually exclusive",
			"spec.remoteWrite.target.remoteWrite.tls: certFile and keyFile must be set together",
			`spec.remoteWrite.target.remoteWrite.protocolVersion: must be "1.0" or "2.0", got "3.0"`,
		}},
		{"remote write url scheme", target(TargetRemoteWrite, &RemoteWriteTargetSpec{RemoteWrite: &RemoteWriteTarget{URL: "ftp://x"}}),
			[]string{`spec.remoteWrite.target.remoteWrite.url: URL "ftp://x" must use http or https`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := newMA("team-a", "app-metrics", "up")
			tt.modify(m)
			err := m.Validate()
			wantErrContains(t, err, tt.want...)
			for _, e := range joined(err) {
				if !strings.HasPrefix(e.Error(), m.ErrorName()+": ") {
					t.Errorf("error %q does not start with the object %q", e, m.ErrorName())
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
		v.url("spec.remoteWrite.target.remoteWrite.url", raw)
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
