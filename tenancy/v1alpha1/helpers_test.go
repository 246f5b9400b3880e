package v1alpha1

import (
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// newMA returns a valid MetricAccess with the given patterns.
func newMA(ns, name string, metrics ...string) *MetricAccess {
	m := &MetricAccess{TypeMeta: metav1.TypeMeta{APIVersion: APIVersion, Kind: Kind}, Spec: MetricAccessSpec{Metrics: metrics}}
	m.Namespace, m.Name = ns, name
	return m
}

// wantErrContains fails unless err contains every substring.
func wantErrContains(t *testing.T, err error, subs ...string) {
	t.Helper()
	for _, s := range subs {
		if err == nil || !strings.Contains(err.Error(), s) {
			t.Errorf("error %v does not contain %q", err, s)
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
