package promtenant

import (
	"context"
	"net/http"
	"strconv"
	"sync"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/prom-tenant/caddy-prom-tenant/internal/promapi"
	"github.com/prom-tenant/caddy-prom-tenant/tenancy"
)

// Label values of the handler's metrics.
const (
	// unknownTenant is the "tenant" label of every request that is not for a
	// tenant of the registry (none given, unknown, not a namespace name, or
	// refused before the tenant is read): clients cannot grow the label set.
	// It is not a namespace name, so it never collides with a tenant.
	unknownTenant = "_unknown"

	outcomeForwarded     = "forwarded"      // handed on to the upstream (whatever it answered)
	outcomeRefused       = "refused"        // answered by the proxy with an error; reason says why
	outcomeUpstreamError = "upstream_error" // the upstream could not be reached, or its answer was unusable
)

// metrics are created once per process and registered into each config's
// registry (a new one per config load), so their values survive reloads.
var metrics = struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	backend  *prometheus.CounterVec
}{
	requests: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "prometheus_proxy_requests_total",
		Help: "Requests the prom_tenant handler answered, by tenant (_unknown for requests not for a known tenant), " +
			"endpoint (served path pattern, or other), outcome (forwarded, refused, upstream_error) and reason (empty when forwarded).",
	}, []string{"tenant", "endpoint", "outcome", "reason"}),
	duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "prometheus_proxy_request_duration_seconds",
		Help:    "Time the prom_tenant handler took for a request, upstream and response included, by tenant, endpoint and outcome.",
		Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120},
	}, []string{"tenant", "endpoint", "outcome"}),
	backend: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "prometheus_proxy_backend_requests_total",
		Help: "Requests handed on to the upstream (the next handler), by tenant, endpoint and the class of the status the upstream answered " +
			"(2xx, 3xx, 4xx, 5xx; error when no answer came back). /api/v1/metadata hands on two requests.",
	}, []string{"tenant", "endpoint", "code"}),
}

var collectors = []prometheus.Collector{metrics.requests, metrics.duration, metrics.backend}

// tenantVecs are the vectors with a "tenant" label, whose series of a
// tenant that left the registry are deleted.
var tenantVecs = []*prometheus.MetricVec{metrics.requests.MetricVec, metrics.duration.MetricVec, metrics.backend.MetricVec}

// outcome returns the outcome and reason labels of what serve returned.
func outcome(err error, ae *promapi.Error) (string, string) {
	switch {
	case err == nil:
		return outcomeForwarded, ""
	case ae == nil:
		return outcomeUpstreamError, promapi.ReasonUpstream // an error Caddy answers: from the next handler
	case ae.Reason() == promapi.ReasonUpstream:
		return outcomeUpstreamError, promapi.ReasonUpstream
	default:
		return outcomeRefused, ae.Reason()
	}
}

// backendCounter is the next handler as the handler calls it: it counts
// each request handed on, by the status class of its answer.
type backendCounter struct {
	next             caddyhttp.Handler
	tenant, endpoint string
}

func (b backendCounter) ServeHTTP(w http.ResponseWriter, r *http.Request) error {
	var status int
	var err error
	if ew, ok := w.(*envelopeWriter); ok {
		// A forwarded request's answer already passes through the envelope
		// writer, which notes its status: no second wrapper on every write.
		err = b.next.ServeHTTP(ew, r)
		status = ew.status
	} else {
		rec := caddyhttp.NewResponseRecorder(w, nil, nil) // streams: nothing is buffered
		err = b.next.ServeHTTP(rec, r)
		status = rec.Status()
	}
	if class := statusClass(status, err); class == "2xx" {
		servedSeriesOf(b.tenant, b.endpoint).backend2xx.Inc()
	} else {
		metrics.backend.WithLabelValues(b.tenant, b.endpoint, class).Inc()
	}
	return err
}

// servedSeries are the series a forwarded request with a 2xx answer counts
// in, for one tenant and endpoint: resolved once, as WithLabelValues hashes
// and checks every label value on each call, several times a request.
type servedSeries struct {
	requests   prometheus.Counter
	duration   prometheus.Observer
	backend2xx prometheus.Counter
}

type servedKey struct{ tenant, endpoint string }

// served holds the resolved series. It stays small (tenants of the
// registry times served endpoints) and is emptied when pruneStale deletes
// series, so that a tenant that comes back counts in live ones. gen counts
// those prunes: series resolved before one (and so perhaps deleted by it)
// are not stored after it.
var served struct {
	sync.RWMutex
	m   map[servedKey]*servedSeries
	gen uint64
}

// afterServedResolve, when set (by tests), runs between resolving a
// tenant's series and storing them: where a prune can come.
var afterServedResolve func()

func servedSeriesOf(tenant, endpoint string) *servedSeries {
	k := servedKey{tenant, endpoint}
	served.RLock()
	s, gen := served.m[k], served.gen
	served.RUnlock()
	if s != nil {
		return s
	}
	s = &servedSeries{
		requests:   metrics.requests.WithLabelValues(tenant, endpoint, outcomeForwarded, ""),
		duration:   metrics.duration.WithLabelValues(tenant, endpoint, outcomeForwarded),
		backend2xx: metrics.backend.WithLabelValues(tenant, endpoint, "2xx"),
	}
	if afterServedResolve != nil {
		afterServedResolve()
	}
	served.Lock()
	defer served.Unlock()
	if served.gen != gen {
		return s // used for this request only: the next resolves again
	}
	if served.m == nil {
		served.m = make(map[servedKey]*servedSeries)
	}
	served.m[k] = s
	return s
}

// statusClass is "2xx" ... "5xx" for a written status, "error" when nothing
// was written (the upstream was not reached: the next handler returned an
// error for Caddy or the handler to answer).
func statusClass(status int, err error) string {
	switch {
	case status >= 200 && status <= 599:
		return strconv.Itoa(status/100) + "xx"
	case status == 0 && err == nil:
		return "2xx" // nothing written and no error: net/http answers 200
	default:
		return "error"
	}
}

// pruning holds the registries whose tenants' series are being pruned, one
// goroutine each, however many handlers share a registry.
var pruning sync.Map // *tenancy.Registry -> struct{}

// pruneTenantSeries deletes, on every change of reg until ctx ends, the
// series of tenants that are no longer in reg, so that the "tenant" label
// follows the registry. It never runs at start: a registry whose Kubernetes
// source has not listed yet is empty, and its first change publishes the
// tenants. (A tenant removed by a config reload with no later change of the
// registry keeps its series until the next change.)
func pruneTenantSeries(ctx context.Context, reg *tenancy.Registry) {
	if _, running := pruning.LoadOrStore(reg, struct{}{}); running {
		return
	}
	go func() {
		defer pruning.Delete(reg)
		for {
			ch := reg.Changed()
			select {
			case <-ctx.Done():
				return
			case <-ch:
			}
			if ctx.Err() != nil {
				return
			}
			pruneStale(reg)
		}
	}()
}

// pruneStale deletes the series of tenant label values not in reg (but
// unknownTenant).
func pruneStale(reg *tenancy.Registry) {
	deleteTenantSeries(staleTenants(reg))
}

// deleteTenantSeries deletes the series of the given tenants, and forgets
// every resolved series, under served's lock with a new generation, so
// that no request stores series resolved before the deletion.
func deleteTenantSeries(tenants []string) {
	if len(tenants) == 0 {
		return
	}
	served.Lock()
	defer served.Unlock()
	for _, t := range tenants {
		for _, v := range tenantVecs {
			v.DeletePartialMatch(prometheus.Labels{"tenant": t})
		}
	}
	clear(served.m)
	served.gen++
}

// staleTenants returns the tenant label values of the handler's metrics
// that reg does not know.
func staleTenants(reg *tenancy.Registry) []string {
	seen := map[string]bool{}
	ch := make(chan prometheus.Metric, 64)
	go func() {
		for _, v := range []prometheus.Collector{metrics.requests, metrics.duration, metrics.backend} {
			v.Collect(ch)
		}
		close(ch)
	}()
	for m := range ch {
		var pb dto.Metric
		if m.Write(&pb) != nil {
			continue
		}
		for _, l := range pb.GetLabel() {
			if l.GetName() == "tenant" {
				seen[l.GetValue()] = true
			}
		}
	}
	var out []string
	for t := range seen {
		if _, ok := reg.Lookup(t); !ok && t != unknownTenant {
			out = append(out, t)
		}
	}
	return out
}
