package remotewrite

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/prometheus/model/labels"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes/fake"
	clienttesting "k8s.io/client-go/testing"

	"github.com/prom-tenant/caddy-prom-tenant/internal/doccheck"
	"github.com/prom-tenant/caddy-prom-tenant/tenancy"
	"github.com/prom-tenant/caddy-prom-tenant/tenancy/v1alpha1"
)

// The tests below drive the copier's error paths and check that
// docs/TROUBLESHOOTING.md shows what a tenant or an admin then sees:
// last_error, a log line, a reason label.

// TestTroubleshootingInvalidTarget: a copier whose target cannot be built
// reports "invalid target: <reason>", with each reason the doc lists.
func TestTroubleshootingInvalidTarget(t *testing.T) {
	doc := doccheck.Troubleshooting(t)
	doccheck.Shows(t, doc, "`invalid target: <reason>`")
	rw := func(target *v1alpha1.RemoteWriteTarget) *tenancy.RemoteWrite {
		return &tenancy.RemoteWrite{Namespace: "team-a", Object: tenancy.ObjectRef{Name: "app"}, Spec: &v1alpha1.RemoteWriteSpec{
			Enabled: true, Target: &v1alpha1.RemoteWriteTargetSpec{Type: v1alpha1.TargetRemoteWrite, RemoteWrite: target}}}
	}
	const allowed = "https://rw.example.com/api/v1/write"
	fromKubernetes := &tenancy.RemoteWrite{Namespace: "team-a", Object: tenancy.ObjectRef{Name: "app", Source: tenancy.SourceKubernetes},
		Spec: &v1alpha1.RemoteWriteSpec{Enabled: true, Target: &v1alpha1.RemoteWriteTargetSpec{
			Type: v1alpha1.TargetPrometheus, Prometheus: &v1alpha1.PrometheusTarget{ServiceName: "prometheus", ServicePort: 9090}}}}
	withFiles := testSettings(t, allowed)
	withFiles.credentialsDir = t.TempDir()
	withTenantHeader := testSettings(t, allowed)
	withTenantHeader.tenantHeader = "X-Scope-OrgID"
	for _, tc := range []struct {
		name  string
		s     *targetSettings
		rw    *tenancy.RemoteWrite
		reWth []string // doccheck.Generalize's pairs
	}{
		{"not allowed", nil, rw(&v1alpha1.RemoteWriteTarget{URL: "https://elsewhere.example.com/api/v1/write"}),
			[]string{`target URL \S+:`, `target URL <url>:`}},
		{"dot segments", nil, rw(&v1alpha1.RemoteWriteTarget{URL: allowed + "/../../admin"}),
			[]string{`target URL \S+:`, `target URL <url>:`}},
		{"query", nil, rw(&v1alpha1.RemoteWriteTarget{URL: allowed + "?tenant=team-b"}),
			[]string{`target URL \S+:`, `target URL <url>:`}},
		{"file credentials off", nil, rw(&v1alpha1.RemoteWriteTarget{URL: allowed, BasicAuth: &v1alpha1.BasicAuth{Username: "u", PasswordFile: "password"}}),
			[]string{`^basicAuth\.passwordFile: `, ``}},
		{"file outside", withFiles, rw(&v1alpha1.RemoteWriteTarget{URL: allowed, BasicAuth: &v1alpha1.BasicAuth{Username: "u", PasswordFile: "../team-b/password"}}),
			[]string{`^basicAuth\.passwordFile: "[^"]*"`, `"<file>"`}},
		{"Secret without Kubernetes", nil, rw(&v1alpha1.RemoteWriteTarget{URL: allowed,
			BasicAuth: &v1alpha1.BasicAuth{Username: "u", PasswordSecret: &v1alpha1.SecretKeyRef{Name: "auth", Key: "password"}}}), nil},
		{"tenant header", withTenantHeader, rw(&v1alpha1.RemoteWriteTarget{URL: allowed, Headers: map[string]string{"X-Scope-OrgID": "team-b"}}),
			[]string{`headers: \S+ is set`, `headers: <name> is set`}},
		{"Service without Kubernetes", nil, fromKubernetes,
			[]string{`: the copier resolves Services through the API, .*$`, ``}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := tc.s
			if s == nil {
				s = testSettings(t, allowed)
			}
			c := newCopier(tc.rw, 30*time.Second, &settings{targets: s, logger: zap.NewNop()}, nil)
			if c.targetErr == nil {
				t.Fatal("the target was built")
			}
			reason, ok := strings.CutPrefix(c.targetErr.Error(), "invalid target: ")
			if !ok {
				t.Fatalf("last error %q, want invalid target: <reason>", c.targetErr)
			}
			doccheck.Shows(t, doc, doccheck.Generalize(reason, tc.reWth...))
		})
	}
}

// TestTroubleshootingServiceRefused: the Services the copier refuses, as it
// reports them.
func TestTroubleshootingServiceRefused(t *testing.T) {
	doc := doccheck.Troubleshooting(t)
	app := map[string]string{"app": "prom"}
	external := testService("team-a", "elsewhere", app, 9090, intstr.FromInt(9090))
	external.Spec.Type = corev1.ServiceTypeExternalName
	external.Spec.ExternalName = "prometheus.team-b.svc.cluster.local"
	k := newKubeServices(fake.NewSimpleClientset([]runtime.Object{
		external,
		testService("team-a", "manual", nil, 9090, intstr.FromInt(9090)),
		testService("team-a", "unselected", map[string]string{"app": "none"}, 9090, intstr.FromInt(9090)),
	}...))
	for name, reWith := range map[string][]string{
		"elsewhere":  {`^service \S+: `, `service <ns>/<name>:<port>: `, `ExternalName, .*`, `ExternalName, ...`},
		"manual":     {`^service \S+: refused as a target: `, `... `, `selector, .*`, `selector, ...`},
		"unselected": {`^service \S+: `, ``, `selector \S+ serves port [0-9]+`, `selector ... serves port <port>`},
	} {
		_, err := k.addresses(context.Background(), serviceKey{namespace: "team-a", name: name, port: 9090})
		if err == nil {
			t.Fatalf("Service %s was not refused", name)
		}
		doccheck.Shows(t, doc, doccheck.Generalize(err.Error(), reWith...))
	}
}

// TestTroubleshootingSource: what the copier reports when the source cannot
// be read, or answers what it must not.
func TestTroubleshootingSource(t *testing.T) {
	doc := doccheck.Troubleshooting(t)
	pol := testPolicy(t, `{namespace="a"}`)

	noConfig := httptest.NewServer(http.NotFoundHandler())
	t.Cleanup(noConfig.Close)
	s, err := newSource(noConfig.URL, 10*time.Second, "test")
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.read(context.Background(), pol, 0, 100)
	if err == nil {
		t.Fatal("a source without /api/v1/status/config was read")
	}
	doccheck.Shows(t, doc, "`"+doccheck.Generalize(err.Error(), `: [^:]*$`, `: <cause>`, `\): .*`, `): <cause>`)+"`")

	readFails := http.NewServeMux()
	readFails.HandleFunc("/api/v1/status/config", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte(`{"status":"success","data":{"yaml":"global: {}\n"}}`))
	})
	readFails.HandleFunc("/api/v1/read", func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "overloaded", http.StatusServiceUnavailable)
	})
	down := httptest.NewServer(readFails)
	t.Cleanup(down.Close)
	if s, err = newSource(down.URL, 10*time.Second, "test"); err != nil {
		t.Fatal(err)
	}
	_, err = s.read(context.Background(), pol, 0, 100)
	if err == nil || !strings.HasPrefix(err.Error(), "remote read from "+down.URL) {
		t.Fatalf("a failing remote read: error %v", err)
	}
	doccheck.Shows(t, doc, "`"+doccheck.Generalize(err.Error(), `^remote read from \S+: .*`, `remote read from <source>: <cause>`)+"`")

	// The remaining errors are tested where they arise (extlabels_test.go,
	// window_test.go); the doc shows their text.
	doccheck.Shows(t, doc, errExternalLabels.Error()+": ...")
	doccheck.Shows(t, doc, "`"+errOutsidePolicy.Error()+"`")
}

// refusingTarget refuses every batch for good, as a Prometheus receiver
// refuses out-of-order samples.
type refusingTarget struct{}

func (refusingTarget) send(context.Context, *batch) error {
	return classify(http.StatusBadRequest, errors.New("out of order sample"))
}

// TestTroubleshootingDropped: the log line and reason of a batch the target
// refuses for good, sent for the first time or resent after a restart.
func TestTroubleshootingDropped(t *testing.T) {
	doc := doccheck.Troubleshooting(t)
	for _, resend := range []bool{false, true} {
		core, logs := observer.New(zap.WarnLevel)
		c := &copier{
			rw:     &tenancy.RemoteWrite{Namespace: "troubleshooting-test"},
			target: &resolvedTarget{delivery: batchDelivery{target: refusingTarget{}}},
			logger: zap.New(core),
			cur:    &cursor{},
		}
		b := &batch{series: []labels.Labels{labels.FromStrings("__name__", "up")}, samples: []sample{{t: 1, v: 1}}}
		if err := c.write(context.Background(), refusingTarget{}, b, resend); err != nil {
			t.Fatalf("resend %v: a refusal for good is not retried: %v", resend, err)
		}
		if logs.Len() != 1 {
			t.Fatalf("resend %v: %d log lines, want 1", resend, logs.Len())
		}
		entry := logs.All()[0]
		doccheck.Shows(t, doc, entry.Message)
		reason := entry.ContextMap()["reason"].(string)
		counter := metrics.dropped
		if resend {
			// Not a loss: counted apart.
			counter = metrics.resentRefused
			doccheck.Shows(t, doc, "`prometheus_proxy_remote_write_samples_resent_refused_total{reason}`")
		}
		if got := testutil.ToFloat64(counter.WithLabelValues("troubleshooting-test", reason)); got != 1 {
			t.Errorf("resend %v: counted %v under reason %q, want 1", resend, got, reason)
		}
		doccheck.Shows(t, doc, "`"+reason+"`")
	}
}

// TestTroubleshootingCopierStates: the doc explains every state a copier
// reports, and the last_error of a retried write and of a state that
// cannot be saved.
func TestTroubleshootingCopierStates(t *testing.T) {
	doc := doccheck.Troubleshooting(t)
	for _, s := range []string{stateStarting, stateCopying, stateRetrying, stateUnwritable, stateRefused} {
		doccheck.Shows(t, doc, "`"+s+"`")
	}
	c := &copier{rw: &tenancy.RemoteWrite{Namespace: "troubleshooting-test"}, logger: zap.NewNop(), cur: &cursor{}}
	c.retrying("<reason>", errors.New("<cause>"))
	doccheck.Shows(t, doc, "`"+c.Status().LastError+"`")
	doccheck.Shows(t, doc, "`"+errStateUnwritable.Error()+": <cause>`")
	doccheck.Shows(t, doc, "`prometheus_proxy_remote_write_state_save_failures_total`")
	doccheck.Shows(t, doc, "`prometheus_proxy_remote_write_copiers{state}`")
}

// TestTroubleshootingFailureReasons: the reason labels of failed writes the
// doc explains.
func TestTroubleshootingFailureReasons(t *testing.T) {
	doc := doccheck.Troubleshooting(t)
	for _, tc := range []struct {
		status int
		shown  string
	}{
		{0, "`network`"},
		{http.StatusOK, "`protocol`"},
		{http.StatusUnauthorized, "`http_<code>`"},
	} {
		var te *targetError
		if !errors.As(classify(tc.status, errors.New("failed")), &te) {
			t.Fatalf("status %d: not a targetError", tc.status)
		}
		if want := strings.ReplaceAll(tc.shown, "<code>", "401"); te.reason != strings.Trim(want, "`") {
			t.Errorf("status %d: reason %q, want %s", tc.status, te.reason, want)
		}
		doccheck.Shows(t, doc, tc.shown)
	}
}

// TestTroubleshootingLeaderElection: what the status and the config errors
// say when a copy's progress cannot be kept with the Lease.
func TestTroubleshootingLeaderElection(t *testing.T) {
	doc := doccheck.Troubleshooting(t)
	cs := fake.NewClientset()
	stores := &kubeStores{client: cs.CoreV1(), namespace: "ops", prefix: "copy", identity: "replica-a"}
	c := &copier{rw: &tenancy.RemoteWrite{Namespace: "team-a"}, target: &resolvedTarget{id: "t"}, logger: zap.NewNop()}
	c.cur = &cursor{turn: make(chan struct{}, 1), live: newLiveSeries(), store: stores.store("team-a/app", "t", stateFile{})}
	if err := c.cur.load(t.Context(), "t", 0, zap.NewNop()); err != nil {
		t.Fatal(err)
	}
	configMap := []string{`ConfigMap \S+/\S+:`, `ConfigMap <namespace>/<name>:`}
	// Another replica claimed the copy: the API answers the update with a conflict.
	cs.PrependReactor("update", "configmaps", func(clienttesting.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewConflict(corev1.Resource("configmaps"), "x", errors.New("changed"))
	})
	err := c.save(nil)
	if !errors.Is(err, errFenced) {
		t.Fatalf("save after another replica's claim: %v", err)
	}
	doccheck.Shows(t, doc, "`"+doccheck.Generalize(err.Error(), configMap...)+"`")
	// The API server refuses the read.
	cs.PrependReactor("get", "configmaps", func(clienttesting.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewForbidden(corev1.Resource("configmaps"), "x", errors.New("RBAC"))
	})
	err = c.cur.load(t.Context(), "t", 0, zap.NewNop())
	if !errors.Is(err, errStoreUnavailable) {
		t.Fatalf("load refused by the API: %v", err)
	}
	doccheck.Shows(t, doc, "`"+doccheck.Generalize(err.Error(), `ConfigMap \S+/\S+: .*`, `ConfigMap <namespace>/<name>: <cause>`)+"`")

	t.Setenv("POD_NAMESPACE", "")
	for _, a := range []*App{
		{Shards: 1, Kubernetes: &KubernetesAccess{}},
		{Shards: 1, LeaderElection: &LeaderElection{}},
		{Shards: 2, Kubernetes: &KubernetesAccess{}, LeaderElection: &LeaderElection{}},
	} {
		a.Source, a.Interval, a.MaxWindow = "http://p:9090", caddy.Duration(time.Minute), caddy.Duration(time.Minute)
		if a.provisionLeaderElection(); a.LeaderElection.Namespace != "" {
			continue // in a pod
		}
		err := a.Validate()
		if err == nil {
			t.Fatalf("%+v: valid", a.LeaderElection)
		}
		msg := strings.TrimPrefix(err.Error(), "prom_remote_write: ")
		msg = doccheck.Generalize(msg, ` \(no /var/run/secrets/kubernetes\.io/serviceaccount/namespace\) and POD_NAMESPACE is not set`, ` ...`, `(kubernetes|each other): .*`, `$1: ...`)
		doccheck.Shows(t, doc, "`"+msg+"`")
	}
}
