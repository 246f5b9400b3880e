package tenancy

import (
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// newMA returns a valid MetricAccess with the given patterns.
func newMA(ns, name string, metrics ...string) *MetricAccess {
	return &MetricAccess{
		TypeMeta:   metav1.TypeMeta{APIVersion: APIVersion, Kind: Kind},
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec:       MetricAccessSpec{Metrics: metrics},
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

// joined returns the errors joined in err (or err itself).
func joined(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	if err == nil {
		return nil
	}
	return []error{err}
}

// publishAndWait publishes objs, waits for every compile, and returns the
// outcome.
func publishAndWait(ts *tenantSet, source string, objs []sourcedObject) publishResult {
	ts.publish(source, objs)
	ts.wait(false)
	return ts.publish(source, objs) // unchanged objects: only reports
}
