package tenancy

import (
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/prom-tenant/caddy-prom-tenant/tenancy/v1alpha1"
)

// newMA returns a valid MetricAccess with the given patterns.
func newMA(ns, name string, metrics ...string) *v1alpha1.MetricAccess {
	return &v1alpha1.MetricAccess{
		TypeMeta:   metav1.TypeMeta{APIVersion: v1alpha1.APIVersion, Kind: v1alpha1.Kind},
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec:       v1alpha1.MetricAccessSpec{Metrics: metrics},
	}
}

// wantErrContains fails unless err is non-nil and contains every substring.
func wantErrContains(t *testing.T, err error, subs ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error, want one containing %q", subs)
	}
	for _, s := range subs {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q does not contain %q", err, s)
		}
	}
}

// publishAndWait publishes objs, waits for every compile, and returns the
// outcome.
func publishAndWait(ts *tenantSet, source string, objs []sourcedObject) publishResult {
	ts.publish(source, objs)
	ts.wait(false)
	return ts.publish(source, objs) // unchanged objects: only reports
}
