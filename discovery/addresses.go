package discovery

import (
	"cmp"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// portSpec is the port to use on each endpoint: a name ("web") or a number
// ("9090"), as in a Service's targetPort.
type portSpec struct {
	name   string
	number int32
}

// parsePort reads a port given by name or by number.
func parsePort(s string) (portSpec, error) {
	if s == "" {
		return portSpec{}, errString("a port (name or number) is required")
	}
	if n, err := strconv.Atoi(s); err == nil {
		if n < 1 || n > 65535 {
			return portSpec{}, errString("port " + s + " is out of range 1-65535")
		}
		return portSpec{number: int32(n)}, nil
	}
	// A named port is an IANA_SVC_NAME in the API: lower case letters, digits
	// and dashes, at most 15 characters. Be lenient but refuse the obviously
	// wrong (a "host:port" or a negative number slipping through).
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-') {
			return portSpec{}, errString("port " + strconv.Quote(s) + " is neither a number nor a port name")
		}
	}
	return portSpec{name: s}, nil
}

type errString string

func (e errString) Error() string { return string(e) }

// slicePort returns the port number of the slice's port that p selects. The
// ports of an EndpointSlice apply to every endpoint in it. A port with no
// protocol is TCP; UDP and SCTP ports are never chosen.
func (p portSpec) slicePort(s *discoveryv1.EndpointSlice) (int32, bool) {
	for _, sp := range s.Ports {
		if sp.Port == nil {
			continue // "all ports": no number to dial
		}
		if sp.Protocol != nil && *sp.Protocol != corev1.ProtocolTCP {
			continue
		}
		name := ""
		if sp.Name != nil {
			name = *sp.Name
		}
		if p.name != "" && name == p.name || p.name == "" && *sp.Port == p.number {
			return *sp.Port, true
		}
	}
	return 0, false
}

// serving reports whether traffic may be sent to the endpoint: ready (a nil
// ready condition means ready, per the discovery/v1 API) and not terminating
// (nil means not terminating).
func serving(e *discoveryv1.Endpoint) bool {
	c := e.Conditions
	if c.Ready != nil && !*c.Ready {
		return false
	}
	if c.Terminating != nil && *c.Terminating {
		return false
	}
	return true
}

// addresses computes the dial addresses ("host:port", IPv6 in brackets) of
// the serving endpoints of the slices on port p: de-duplicated and sorted.
func addresses(slices_ []*discoveryv1.EndpointSlice, p portSpec) []string {
	return sliceAddresses(slices_, p, serving)
}

// notServingAddresses are the addresses of the endpoints that are not ready
// or terminating, and not served by another endpoint (for the admin API and
// metrics; never dialled).
func notServingAddresses(slices_ []*discoveryv1.EndpointSlice, p portSpec) []string {
	return without(sliceAddresses(slices_, p, func(e *discoveryv1.Endpoint) bool { return !serving(e) }), addresses(slices_, p))
}

// without returns the addresses of a that are not in b.
func without(a, b []string) []string {
	out := a[:0:0]
	for _, x := range a {
		if !slices.Contains(b, x) {
			out = append(out, x)
		}
	}
	return out
}

// sliceAddresses computes the dial addresses of the endpoints that keep
// accepts, de-duplicated and sorted.
func sliceAddresses(slices_ []*discoveryv1.EndpointSlice, p portSpec, keep func(*discoveryv1.Endpoint) bool) []string {
	var out []string
	for _, s := range slices_ {
		if s == nil {
			continue
		}
		port, ok := p.slicePort(s)
		if !ok {
			continue
		}
		ps := strconv.Itoa(int(port))
		for i := range s.Endpoints {
			e := &s.Endpoints[i]
			if !keep(e) {
				continue
			}
			for _, a := range e.Addresses {
				if a == "" {
					continue
				}
				if s.AddressType == discoveryv1.AddressTypeIPv6 || s.AddressType == discoveryv1.AddressTypeIPv4 {
					ip := net.ParseIP(a)
					if ip == nil {
						continue // not an address of the slice's type: skip, never dial garbage
					}
					a = ip.String() // canonical form, so that "::1" and "0::1" de-duplicate
				}
				out = append(out, net.JoinHostPort(a, ps))
			}
		}
	}
	slices.SortFunc(out, compareAddr)
	return slices.Compact(out)
}

// compareAddr orders "host:port" addresses by IP (numerically; IPv4 before
// IPv6; names after addresses, by name), then by port number.
func compareAddr(a, b string) int {
	ha, pa, _ := net.SplitHostPort(a)
	hb, pb, _ := net.SplitHostPort(b)
	ia, erra := netip.ParseAddr(ha)
	ib, errb := netip.ParseAddr(hb)
	switch {
	case erra == nil && errb == nil:
		if c := ia.Compare(ib); c != 0 {
			return c
		}
	case erra == nil:
		return -1
	case errb == nil:
		return 1
	default:
		if c := strings.Compare(ha, hb); c != 0 {
			return c
		}
	}
	na, _ := strconv.Atoi(pa)
	nb, _ := strconv.Atoi(pb)
	return cmp.Compare(na, nb)
}

// hasAnnotations reports whether obj carries every annotation in want with
// exactly that value (an empty want matches everything).
func hasAnnotations(obj metav1.Object, want map[string]string) bool {
	if len(want) == 0 {
		return true
	}
	have := obj.GetAnnotations()
	for k, v := range want {
		got, ok := have[k]
		if !ok || got != v {
			return false
		}
	}
	return true
}

// annotated keeps the objects that carry every annotation in want.
func annotated[T metav1.Object](objs []T, want map[string]string) []T {
	if len(want) == 0 {
		return objs
	}
	var out []T
	for _, o := range objs {
		if hasAnnotations(o, want) {
			out = append(out, o)
		}
	}
	return out
}

// tcp reports whether a port protocol is TCP (empty means TCP).
func tcp(p corev1.Protocol) bool { return p == "" || p == corev1.ProtocolTCP }

// canonicalIP returns the canonical form of an IP address, or "" when s is
// not one.
func canonicalIP(s string) string {
	ip := net.ParseIP(s)
	if ip == nil {
		return ""
	}
	return ip.String()
}

// podReady reports whether a pod may receive traffic: running, its Ready
// condition true, and not being deleted (a terminating pod keeps Ready true
// until its containers stop).
func podReady(p *corev1.Pod) bool {
	if p.DeletionTimestamp != nil || p.Status.Phase != corev1.PodRunning {
		return false
	}
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// podPort returns the port p selects on a pod: a named TCP container port
// (of a regular container; init containers do not serve), or the number as
// given (a pod need not declare the ports it listens on, as with a
// Service's numeric targetPort).
func (p portSpec) podPort(pod *corev1.Pod) (int32, bool) {
	if p.name == "" {
		return p.number, true
	}
	for _, c := range pod.Spec.Containers {
		for _, cp := range c.Ports {
			if cp.Name == p.name && tcp(cp.Protocol) && cp.ContainerPort > 0 {
				return cp.ContainerPort, true
			}
		}
	}
	return 0, false
}

// podAddresses computes the dial addresses of the ready, non-terminating
// pods on port p (the pod's primary IP): de-duplicated and sorted.
func podAddresses(pods []*corev1.Pod, p portSpec) []string {
	return podAddressesWhere(pods, p, podReady)
}

// notReadyPodAddresses are the addresses of the pods with an IP that are
// not ready or are being deleted (for the admin API and metrics).
func notReadyPodAddresses(pods []*corev1.Pod, p portSpec) []string {
	return without(podAddressesWhere(pods, p, func(pod *corev1.Pod) bool { return !podReady(pod) }), podAddresses(pods, p))
}

func podAddressesWhere(pods []*corev1.Pod, p portSpec, keep func(*corev1.Pod) bool) []string {
	var out []string
	for _, pod := range pods {
		if pod == nil || !keep(pod) {
			continue
		}
		ip := canonicalIP(pod.Status.PodIP)
		if ip == "" {
			continue
		}
		port, ok := p.podPort(pod)
		if !ok {
			continue
		}
		out = append(out, net.JoinHostPort(ip, strconv.Itoa(int(port))))
	}
	slices.SortFunc(out, compareAddr)
	return slices.Compact(out)
}

// servicePort returns the service port p selects: by the port's name or by
// its number (spec.ports[].port, the port the cluster IP listens on), TCP
// only.
func (p portSpec) servicePort(s *corev1.Service) (int32, bool) {
	for _, sp := range s.Spec.Ports {
		if !tcp(sp.Protocol) || sp.Port <= 0 {
			continue
		}
		if p.name != "" && sp.Name == p.name || p.name == "" && sp.Port == p.number {
			return sp.Port, true
		}
	}
	return 0, false
}

// serviceAddresses computes the dial addresses (cluster IP and port) of the
// services: headless services (clusterIP None), ExternalName services and
// services being deleted are skipped. De-duplicated and sorted.
func serviceAddresses(svcs []*corev1.Service, p portSpec) []string {
	var out []string
	for _, s := range svcs {
		if s == nil || s.DeletionTimestamp != nil || s.Spec.Type == corev1.ServiceTypeExternalName {
			continue
		}
		ip := canonicalIP(s.Spec.ClusterIP) // "None" (headless) and "" do not parse
		if ip == "" {
			continue
		}
		port, ok := p.servicePort(s)
		if !ok {
			continue
		}
		out = append(out, net.JoinHostPort(ip, strconv.Itoa(int(port))))
	}
	slices.SortFunc(out, compareAddr)
	return slices.Compact(out)
}
