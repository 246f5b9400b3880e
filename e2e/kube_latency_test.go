package e2e

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

	"github.com/prom-tenant/caddy-prom-tenant/internal/testenv"
)

// latencySamples is how many changes each measurement makes.
const latencySamples = 10

// pollEvery is how often a measurement looks for the change to take effect.
const pollEvery = 5 * time.Millisecond

// waitSeen polls ok every pollEvery from now until it holds, and returns how
// long that took. It fails the test if the change is not seen within 10s:
// only correctness is asserted, never a time bound.
func waitSeen(t *testing.T, what string, ok func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !ok() {
		if time.Since(start) > 10*time.Second {
			t.Fatalf("%s: not seen within 10s", what)
		}
		time.Sleep(pollEvery)
	}
	return time.Since(start)
}

// summary renders min/median/max of the samples, in milliseconds.
func summary(d []time.Duration) string {
	s := slices.Clone(d)
	slices.Sort(s)
	ms := func(x time.Duration) float64 { return math.Round(float64(x)/float64(time.Microsecond)) / 1000 }
	med := s[len(s)/2]
	if len(s)%2 == 0 {
		med = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	all := make([]string, len(d))
	for i, x := range d {
		all[i] = fmt.Sprint(ms(x))
	}
	return fmt.Sprintf("n=%d min=%.3fms median=%.3fms max=%.3fms (samples, ms: %s)", len(s), ms(s[0]), ms(med), ms(s[len(s)-1]), strings.Join(all, " "))
}

// TestMeasureChangeLatency measures how soon bin/caddy follows a change made
// through a real API server. It logs numbers (docs/BENCHMARKS.md quotes
// them) and asserts only that every change is seen.
//
// Each sample runs from the API call returning to the first poll (every 5ms)
// that sees the change, so it includes up to one poll interval and, for
// MetricAccess, one query through the proxy to Prometheus (a few ms).
func TestMeasureChangeLatency(t *testing.T) {
	api := testenv.SharedKubeAPIServer(t)

	t.Run("MetricAccess", func(t *testing.T) {
		e := newKubeEnv(t, api)
		const ns, name = "latency-e2e", "app"
		e.namespace(t, ns)
		res := e.dyn.Resource(metricAccesses).Namespace(ns)
		_ = res.Delete(t.Context(), name, metav1.DeleteOptions{}) // a rerun against the same API server
		t.Cleanup(func() { _ = res.Delete(t.Context(), name, metav1.DeleteOptions{}) })

		p := startProxyWith(t, testenv.SharedPrometheus(t), "kubernetes {\n\t\t\tkubeconfig "+api.Kubeconfig+"\n\t\t\tnamespaces "+ns+"\n\t\t}", "")
		// answer is "403" with no tenant, "up" when the tenant may see up,
		// "none" when its policy hides up.
		answer := func() string {
			status, env, _ := do(t, request(t, "GET", p.url+"/api/v1/query?query=count(up)", ns, ""))
			switch {
			case status == 403:
				return "403"
			case status == 200 && strings.Contains(string(env.Data), `"result":[]`):
				return "none"
			case status == 200:
				return "up"
			}
			return fmt.Sprint(status)
		}
		eventually(t, "the watch has listed (no tenant yet)", 10*time.Second, func() bool { return answer() == "403" })

		manifest := func(metric string) string {
			return "apiVersion: observability.ethos.io/v1alpha1\nkind: MetricAccess\nmetadata: {name: " + name + ", namespace: " + ns +
				"}\nspec: {metrics: [" + metric + "]}\n"
		}
		// Create: 403 -> 200. Delete between samples (not measured) waits
		// for the tenant to be gone again.
		var created, updated []time.Duration
		for i := range latencySamples {
			e.apply(t, manifest("up")) // the object does not exist: Create
			created = append(created, waitSeen(t, fmt.Sprintf("create %d", i), func() bool { return answer() == "up" }))
			if err := res.Delete(t.Context(), name, metav1.DeleteOptions{}); err != nil {
				t.Fatal(err)
			}
			eventually(t, "the tenant is gone", 10*time.Second, func() bool { return answer() == "403" })
		}

		// Update: the policy flips between up and http_requests_total. A
		// merge patch of spec, so the watcher's status writes never conflict.
		// flip makes update i and returns what the proxy should then answer.
		flip := func(i int) string {
			metric, want := "http_requests_total", "none"
			if i%2 == 1 {
				metric, want = "up", "up"
			}
			patch := fmt.Sprintf(`{"spec":{"metrics":[%q]}}`, metric)
			if _, err := res.Patch(t.Context(), name, types.MergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
				t.Fatal(err)
			}
			return want
		}
		e.apply(t, manifest("up"))
		eventually(t, "the tenant is back", 10*time.Second, func() bool { return answer() == "up" })
		for i := range latencySamples {
			want := flip(i)
			updated = append(updated, waitSeen(t, fmt.Sprintf("update %d", i), func() bool { return answer() == want }))
		}

		// The same updates 300ms apart, for comparison. Status writes are
		// paced by client-go's rate limit (5 requests/s, burst 10) but run
		// apart from publishing, so back-to-back changes should not wait on
		// them; these two series show whether they do.
		var spaced []time.Duration
		for i := range latencySamples {
			time.Sleep(300 * time.Millisecond)
			want := flip(i)
			spaced = append(spaced, waitSeen(t, fmt.Sprintf("spaced update %d", i), func() bool { return answer() == want }))
		}
		t.Logf("MetricAccess create -> proxy answers 200: %s", summary(created))
		t.Logf("MetricAccess update, back to back -> proxy answers by the new policy: %s", summary(updated))
		t.Logf("MetricAccess update, 300ms apart -> proxy answers by the new policy: %s", summary(spaced))
	})

	t.Run("EndpointSlice", func(t *testing.T) {
		client := kubernetes.NewForConfigOrDie(api.RESTConfig())
		e := &kubeEnv{api: api, client: client}
		const ns = "latency-discovery"
		e.namespace(t, ns)
		slices := client.DiscoveryV1().EndpointSlices(ns)
		// A documentation address (192.0.2.0/24): never dialled. No request
		// is sent to this Caddy at all; the upstream set is read from its log.
		s := endpointSlice(ns, "prometheus-latency", "prometheus", "192.0.2.10:9090", false)
		_ = slices.Delete(t.Context(), s.Name, metav1.DeleteOptions{})
		if _, err := slices.Create(t.Context(), s, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = slices.Delete(t.Context(), s.Name, metav1.DeleteOptions{}) })

		c, _ := startDiscoveryProxy(t, api, ns)
		changes := func() []upstreamChange { return upstreamChanges(c.LogPath) }
		eventually(t, "the watcher lists the slice", 10*time.Second, func() bool {
			ch := changes()
			return len(ch) > 0 && len(ch[len(ch)-1].Upstreams) == 0
		})

		var seen, logged []time.Duration
		for i := range latencySamples {
			ready := i%2 == 0
			cur, err := slices.Get(t.Context(), s.Name, metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			cur.Endpoints[0].Conditions.Ready = &ready
			n := len(changes())
			if _, err := slices.Update(t.Context(), cur, metav1.UpdateOptions{}); err != nil {
				t.Fatal(err)
			}
			returned := time.Now()
			var last upstreamChange
			seen = append(seen, waitSeen(t, fmt.Sprintf("readiness change %d", i), func() bool {
				ch := changes()
				if len(ch) <= n {
					return false
				}
				last = ch[len(ch)-1]
				return (len(last.Upstreams) == 1 && last.Upstreams[0] == "192.0.2.10:9090") == ready
			}))
			// Caddy's own timestamp of the line, free of the poll interval.
			at := time.Unix(0, int64(last.TS*1e9))
			logged = append(logged, at.Sub(returned))
		}
		t.Logf("EndpointSlice readiness change -> log line seen (5ms polls of the log file): %s", summary(seen))
		t.Logf("EndpointSlice readiness change -> log line's own ts (no poll interval; can be slightly negative: the watch event may beat the client's return): %s", summary(logged))
	})
}
