package remotewrite

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8slabels "k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
)

// serviceTTL is how long the addresses of a Service are reused: a Pod that
// goes away is left within it, and the API server sees at most one read of
// a Service and its Pods per TTL.
const serviceTTL = 10 * time.Second

// errServiceRefused says a tenant's Service cannot be used as a target,
// whatever its Pods do: it could lead outside the tenant's namespace.
var errServiceRefused = errors.New("refused as a target")

// kubeServices resolves a tenant's Service to the addresses of its ready
// Pods through the Kubernetes API, never through DNS. A Service's DNS name
// is the tenant's to point anywhere: an ExternalName Service names any host,
// and a Service without a selector takes whatever EndpointSlice the tenant
// writes (CVE-2021-25740). The Pods a selector picks in the tenant's own
// namespace, and the IPs the kubelet gave them, are not the tenant's to
// choose, so only those are dialed.
type kubeServices struct {
	client kubernetes.Interface

	mu    sync.Mutex
	cache map[serviceKey]cachedAddresses

	dialTurn atomic.Uint64 // moves the first Pod dialed on with each connection
}

type serviceKey struct {
	namespace, name string
	port            int
}

func (k serviceKey) String() string { return k.namespace + "/" + k.name + ":" + strconv.Itoa(k.port) }

type cachedAddresses struct {
	addrs   []string
	fetched time.Time
}

func newKubeServices(client kubernetes.Interface) *kubeServices {
	return &kubeServices{client: client, cache: map[serviceKey]cachedAddresses{}}
}

// addresses returns host:port of every ready Pod behind port of the Service
// namespace/name.
func (k *kubeServices) addresses(ctx context.Context, key serviceKey) ([]string, error) {
	k.mu.Lock()
	c, ok := k.cache[key]
	k.mu.Unlock()
	if ok && time.Since(c.fetched) < serviceTTL {
		return c.addrs, nil
	}
	addrs, err := k.lookup(ctx, key)
	if err != nil {
		return nil, fmt.Errorf("service %s: %w", key, err)
	}
	now := time.Now()
	k.mu.Lock()
	for other, c := range k.cache { // Services no target names any more
		if now.Sub(c.fetched) >= serviceTTL {
			delete(k.cache, other)
		}
	}
	k.cache[key] = cachedAddresses{addrs: addrs, fetched: now}
	k.mu.Unlock()
	return addrs, nil
}

// forget drops the addresses of key: a Pod that does not answer may be
// gone, and its IP given to another namespace's Pod.
func (k *kubeServices) forget(key serviceKey) {
	k.mu.Lock()
	delete(k.cache, key)
	k.mu.Unlock()
}

func (k *kubeServices) lookup(ctx context.Context, key serviceKey) ([]string, error) {
	svc, err := k.client.CoreV1().Services(key.namespace).Get(ctx, key.name, metav1.GetOptions{})
	if err != nil {
		return nil, err
	}
	switch {
	case svc.Spec.Type == corev1.ServiceTypeExternalName:
		return nil, fmt.Errorf("%w: it is of type ExternalName, which can name a host outside the namespace", errServiceRefused)
	case len(svc.Spec.Selector) == 0:
		return nil, fmt.Errorf("%w: it has no selector, so its endpoints are whatever its EndpointSlices say, not Pods of the namespace", errServiceRefused)
	}
	var sp *corev1.ServicePort
	for i := range svc.Spec.Ports {
		if p := &svc.Spec.Ports[i]; int(p.Port) == key.port && (p.Protocol == "" || p.Protocol == corev1.ProtocolTCP) {
			sp = p
		}
	}
	if sp == nil {
		return nil, fmt.Errorf("it has no TCP port %d", key.port)
	}
	pods, err := k.client.CoreV1().Pods(key.namespace).List(ctx, metav1.ListOptions{
		LabelSelector: k8slabels.SelectorFromSet(svc.Spec.Selector).String(),
	})
	if err != nil {
		return nil, err
	}
	var addrs []string
	for i := range pods.Items {
		pod := &pods.Items[i]
		if !usablePod(pod) {
			continue
		}
		if port, ok := targetPort(pod, sp); ok {
			addrs = append(addrs, net.JoinHostPort(pod.Status.PodIP, strconv.Itoa(port)))
		}
	}
	if len(addrs) == 0 {
		return nil, fmt.Errorf("no ready Pod of its selector %s serves port %d", k8slabels.SelectorFromSet(svc.Spec.Selector), key.port)
	}
	return addrs, nil
}

// usablePod reports whether pod is ready and has an address of its own. A
// host-network Pod's IP is its node's, where other tenants' host ports and
// the kubelet listen: it is not the tenant's address.
func usablePod(pod *corev1.Pod) bool {
	if pod.DeletionTimestamp != nil || pod.Spec.HostNetwork || pod.Status.PodIP == "" || pod.Status.Phase != corev1.PodRunning {
		return false
	}
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// targetPort resolves the Service port's target port on pod, as the
// EndpointSlice controller does: a number as is (none means the Service
// port), a name by the pod's container ports.
func targetPort(pod *corev1.Pod, sp *corev1.ServicePort) (int, bool) {
	tp := sp.TargetPort
	switch {
	case tp.Type == intstr.String && tp.StrVal != "":
		for _, c := range pod.Spec.Containers {
			for _, p := range c.Ports {
				if p.Name == tp.StrVal && (p.Protocol == "" || p.Protocol == corev1.ProtocolTCP) {
					return int(p.ContainerPort), true
				}
			}
		}
		return 0, false
	case tp.Type == intstr.Int && tp.IntVal != 0:
		return int(tp.IntVal), true
	}
	return int(sp.Port), true
}

// serviceEndpoint is the Service a target writes to, resolved by kubeServices.
type serviceEndpoint struct {
	services *kubeServices
	key      serviceKey
	dialer   net.Dialer
}

// check resolves the Service before a write, so that a Service that cannot
// be used fails the write with its reason rather than as a dial error
// retried with backoff.
func (e *serviceEndpoint) check(ctx context.Context) error {
	if _, err := e.services.addresses(ctx, e.key); err != nil {
		return &targetError{reason: "service", err: err}
	}
	return nil
}

// dial connects to one of the Service's Pods; addr, the Service's name, is
// what the request says (its Host header), never what is dialed.
func (e *serviceEndpoint) dial(ctx context.Context, network, _ string) (net.Conn, error) {
	addrs, err := e.services.addresses(ctx, e.key)
	if err != nil {
		return nil, err
	}
	var errs []error
	for _, i := range e.services.rotate(len(addrs)) {
		conn, err := e.dialer.DialContext(ctx, network, addrs[i])
		if err == nil {
			return conn, nil
		}
		errs = append(errs, err)
	}
	e.services.forget(e.key)
	return nil, errors.Join(errs...)
}

// rotate returns 0..n-1 starting at a position that moves on with each call,
// so that connections spread over the Pods.
func (s *kubeServices) rotate(n int) []int {
	start := int(s.dialTurn.Add(1) % uint64(n))
	out := make([]int, n)
	for i := range out {
		out[i] = (start + i) % n
	}
	return out
}

// serviceBatchTarget checks the Service before each write.
type serviceBatchTarget struct {
	endpoint *serviceEndpoint
	next     batchTarget
}

func (t serviceBatchTarget) send(ctx context.Context, b *batch) error {
	if err := t.endpoint.check(ctx); err != nil {
		return err
	}
	return t.next.send(ctx, b)
}

// serviceSnapshotTarget checks the Service before each push.
type serviceSnapshotTarget struct {
	endpoint *serviceEndpoint
	next     snapshotTarget
}

func (t serviceSnapshotTarget) push(ctx context.Context, series []labels.Labels, values []float64) error {
	if err := t.endpoint.check(ctx); err != nil {
		return err
	}
	return t.next.push(ctx, series, values)
}
