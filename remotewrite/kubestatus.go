package remotewrite

import (
	"context"
	"encoding/json"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"

	"github.com/prom-tenant/caddy-prom-tenant/tenancy/v1alpha1"
)

// statusEvery bounds how often a copier writes its MetricAccess's status
// while nothing but the counters changes: the API server sees at most one
// write per object per statusEvery (an error appearing or clearing is
// written at once).
const statusEvery = 30 * time.Second

// statusWriter writes a copier's state into status.remoteWrite of its
// MetricAccess, for objects read from the Kubernetes API, so that
// `kubectl get metricaccess` shows it.
type statusWriter struct {
	client dynamic.Interface
}

// write merge-patches the status subresource: only status.remoteWrite is
// touched, so the tenancy source's Ready condition stays as it is.
func (w *statusWriter) write(ctx context.Context, namespace, name string, s Status) error {
	rs := v1alpha1.RemoteWriteStatus{
		Target:               s.Target,
		State:                s.State,
		LastError:            s.LastError,
		SamplesSent:          int64(s.SamplesSent),
		SamplesDropped:       int64(s.SamplesDropped),
		SamplesResentRefused: int64(s.SamplesResentRefused),
	}
	at := func(t time.Time) *metav1.Time {
		if t.IsZero() {
			return nil
		}
		mt := metav1.NewTime(t)
		return &mt
	}
	rs.StateSince, rs.CopiedUntil, rs.LastSuccess, rs.LastErrorTime = at(s.StateSince), at(s.CopiedUntil), at(s.LastSuccess), at(s.LastErrorTime)
	fields, err := json.Marshal(rs)
	if err != nil {
		return err
	}
	var patch map[string]any
	if err := json.Unmarshal(fields, &patch); err != nil {
		return err
	}
	// A merge patch leaves out a field it does not name: a cleared error
	// must be named, as null, or the object would show it forever.
	for _, k := range []string{"lastError", "lastErrorTime"} {
		if _, ok := patch[k]; !ok {
			patch[k] = nil
		}
	}
	body, err := json.Marshal(map[string]any{"status": map[string]any{"remoteWrite": patch}})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	_, err = w.client.Resource(v1alpha1.Resource).Namespace(namespace).Patch(ctx, name, types.MergePatchType, body,
		metav1.PatchOptions{FieldManager: "prom-tenant-remote-write"}, "status")
	return err
}
