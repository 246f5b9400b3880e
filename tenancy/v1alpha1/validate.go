package v1alpha1

import (
	"errors"
	"fmt"
	"maps"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"

	"golang.org/x/net/http/httpguts"
	"k8s.io/apimachinery/pkg/util/validation"
)

// MinRemoteWriteInterval is the shortest remoteWrite.interval allowed.
const MinRemoteWriteInterval = 5 * time.Second

var labelNameRE = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*$`)

// Validate checks m strictly. It returns every problem found, joined, each
// naming the object ("namespace/name") and the field path, so that all can
// be fixed in one go. It returns nil if m is valid.
func (m *MetricAccess) Validate() error {
	v := &validator{obj: m.ErrorName()}
	v.meta(m)
	v.spec(m)
	return errors.Join(v.errs...)
}

// ErrorName names m in errors ("namespace/name"), even when its name or
// namespace is missing.
func (m *MetricAccess) ErrorName() string {
	ns, name := m.Namespace, m.Name
	if ns == "" {
		ns = "<no namespace>"
	}
	if name == "" {
		name = "<no name>"
	}
	return ns + "/" + name
}

// validator collects the problems of one object.
// +kubebuilder:object:generate=false
type validator struct {
	obj  string
	errs []error
}

func (v *validator) errorf(field, format string, args ...any) {
	v.errs = append(v.errs, fmt.Errorf("%s: %s: %s", v.obj, field, fmt.Sprintf(format, args...)))
}

// dns reports each message of a k8s.io/apimachinery validation function.
func (v *validator) dns(field, value string, check func(string) []string) {
	if value == "" {
		v.errorf(field, "required")
		return
	}
	if msgs := check(value); len(msgs) > 0 {
		v.errorf(field, "invalid value %q: %s", value, strings.Join(msgs, "; "))
	}
}

func (v *validator) meta(m *MetricAccess) {
	if m.APIVersion != APIVersion {
		v.errorf("apiVersion", "must be %q, got %q", APIVersion, m.APIVersion)
	}
	if m.Kind != Kind {
		v.errorf("kind", "must be %q, got %q", Kind, m.Kind)
	}
	v.dns("metadata.name", m.Name, validation.IsDNS1123Label)
	v.dns("metadata.namespace", m.Namespace, validation.IsDNS1123Label)
}

func (v *validator) spec(m *MetricAccess) {
	s := &m.Spec
	if len(s.Metrics) == 0 {
		v.errorf("spec.metrics", "at least one pattern is required")
	}
	if len(s.Metrics) > MaxPatternsPerObject {
		// Checked before parsing any pattern: the cap bounds this work too.
		v.errorf("spec.metrics", "%d patterns, at most %d allowed per MetricAccess: split them over several objects "+
			"(a namespace holds up to max_patterns_per_namespace patterns in all)", len(s.Metrics), MaxPatternsPerObject)
	} else {
		for i, p := range s.Metrics {
			if _, err := ParsePattern(p); err != nil {
				v.errorf(fmt.Sprintf("spec.metrics[%d]", i), "%v", err)
			}
		}
	}
	v.labelNames("spec.labelSelectors", s.LabelSelectors)
	if s.RemoteWrite != nil {
		v.remoteWrite("spec.remoteWrite", s.RemoteWrite)
	}
}

// labelNames checks the keys of a label map, in sorted order.
func (v *validator) labelNames(field string, m map[string]string) {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if !labelNameRE.MatchString(k) {
			v.errorf(field, "invalid label name %q", k)
		}
	}
}

func (v *validator) remoteWrite(f string, rw *RemoteWriteSpec) {
	if rw.Interval != nil && rw.Interval.Duration < MinRemoteWriteInterval {
		v.errorf(f+".interval", "must be at least %s, got %s", MinRemoteWriteInterval, rw.Interval.Duration)
	}
	v.labelNames(f+".extraLabels", rw.ExtraLabels)
	for _, k := range slices.Sorted(maps.Keys(rw.ExtraLabels)) {
		switch {
		case strings.HasPrefix(k, "__"):
			// __name__ would rename series; other __ labels are Prometheus's own.
			v.errorf(f+".extraLabels", "label %q is reserved: names starting with __ cannot be added", k)
		case rw.ExtraLabels[k] == "":
			v.errorf(f+".extraLabels["+k+"]", "empty value: an empty label is no label in Prometheus")
		}
	}

	switch {
	case rw.Target != nil:
		v.target(f+".target", rw.Target)
	case rw.Enabled:
		v.errorf(f+".target", "required when enabled: a type (%s) and its block", quoteAll(targetTypes))
	}
}

// targetTypes are the values of target.type, in the original's order.
var targetTypes = []string{TargetPrometheus, TargetPushgateway, TargetRemoteWrite}

// target checks that type names a kind of target and that exactly the block
// of that kind is set: the type decides which block is used, so a block of
// another kind would be silently ignored.
func (v *validator) target(f string, t *RemoteWriteTargetSpec) {
	var set []string
	if t.Prometheus != nil {
		set = append(set, "prometheus")
	}
	if t.Pushgateway != nil {
		set = append(set, "pushgateway")
	}
	if t.RemoteWrite != nil {
		set = append(set, "remoteWrite")
	}
	// The block each type uses; remote_write's is remoteWrite, as in the original.
	block := map[string]string{TargetPrometheus: "prometheus", TargetPushgateway: "pushgateway", TargetRemoteWrite: "remoteWrite"}[t.Type]
	switch {
	case t.Type == "":
		v.errorf(f+".type", "required: one of %s (blocks set: %s)", quoteAll(targetTypes), listOrNone(set))
		return
	case block == "":
		v.errorf(f+".type", "unknown type %q: must be one of %s", t.Type, quoteAll(targetTypes))
		return
	}
	for _, b := range set {
		if b != block {
			v.errorf(f+"."+b, "set, but type is %q, which uses %s.%s only: remove %s or change type", t.Type, f, block, b)
		}
	}
	switch block {
	case "prometheus":
		if t.Prometheus == nil {
			v.errorf(f+".prometheus", "required for type %q: serviceName and servicePort", t.Type)
		} else {
			v.prometheus(f+".prometheus", t.Prometheus)
		}
	case "pushgateway":
		if t.Pushgateway == nil {
			v.errorf(f+".pushgateway", "required for type %q: serviceName, servicePort and jobName", t.Type)
		} else {
			v.pushgateway(f+".pushgateway", t.Pushgateway)
		}
	case "remoteWrite":
		if t.RemoteWrite == nil {
			v.errorf(f+".remoteWrite", "required for type %q: url", t.Type)
		} else {
			v.remoteWriteTarget(f+".remoteWrite", t.RemoteWrite)
		}
	}
}

func quoteAll(s []string) string {
	q := make([]string, len(s))
	for i, x := range s {
		q[i] = fmt.Sprintf("%q", x)
	}
	return strings.Join(q, ", ")
}

func listOrNone(s []string) string {
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, ", ")
}

func (v *validator) port(field string, p int) {
	if p < 1 || p > 65535 {
		v.errorf(field, "must be between 1 and 65535, got %d", p)
	}
}

func (v *validator) prometheus(f string, p *PrometheusTarget) {
	// A DNS-1035 label: a Service of the tenant's own namespace.
	v.dns(f+".serviceName", p.ServiceName, validation.IsDNS1035Label)
	v.port(f+".servicePort", p.ServicePort)
	if p.Path != "" && !strings.HasPrefix(p.Path, "/") {
		v.errorf(f+".path", "must start with /, got %q", p.Path)
	}
}

func (v *validator) pushgateway(f string, p *PushgatewayTarget) {
	switch {
	case p.URL != "" && (p.ServiceName != "" || p.ServicePort != 0):
		v.errorf(f, "url and serviceName/servicePort are mutually exclusive")
	case p.URL != "":
		v.url(f+".url", p.URL)
	case p.ServiceName == "" && p.ServicePort == 0:
		v.errorf(f, "either serviceName and servicePort or url is required")
	default:
		v.dns(f+".serviceName", p.ServiceName, validation.IsDNS1035Label)
		v.port(f+".servicePort", p.ServicePort)
	}
	if p.JobName == "" {
		v.errorf(f+".jobName", "required")
	}
	v.labelNames(f+".groupingKey", p.GroupingKey)
	for _, k := range slices.Sorted(maps.Keys(p.GroupingKey)) {
		switch {
		case strings.HasPrefix(k, "__"):
			v.errorf(f+".groupingKey", "label %q is reserved: names starting with __ cannot be set", k)
		case k == "job":
			v.errorf(f+".groupingKey", "job is jobName's: set jobName instead")
		case p.GroupingKey[k] == "":
			v.errorf(f+".groupingKey["+k+"]", "empty value: an empty label is no label in Prometheus")
		}
	}
}

func (v *validator) remoteWriteTarget(f string, r *RemoteWriteTarget) {
	if r.URL == "" {
		v.errorf(f+".url", "required")
	} else {
		v.url(f+".url", r.URL)
	}
	names := make([]string, 0, len(r.Headers))
	for k := range r.Headers {
		names = append(names, k)
	}
	slices.Sort(names)
	for _, k := range names {
		if !httpguts.ValidHeaderFieldName(k) {
			v.errorf(f+".headers", "invalid header name %q", k)
		} else if !httpguts.ValidHeaderFieldValue(r.Headers[k]) {
			v.errorf(f+".headers["+k+"]", "invalid header value")
		}
	}
	if b := r.BasicAuth; b != nil {
		bf := f + ".basicAuth"
		if b.Username == "" {
			v.errorf(bf+".username", "required")
		}
		switch {
		case b.PasswordSecret != nil && b.PasswordFile != "":
			v.errorf(bf, "passwordSecret and passwordFile are mutually exclusive")
		case b.PasswordSecret != nil:
			v.dns(bf+".passwordSecret.name", b.PasswordSecret.Name, validation.IsDNS1123Subdomain)
			v.dns(bf+".passwordSecret.key", b.PasswordSecret.Key, validation.IsConfigMapKey)
		case b.PasswordFile == "":
			v.errorf(bf, "one of passwordSecret or passwordFile is required")
		}
	}
	if r.TLS != nil && strings.HasPrefix(strings.ToLower(r.URL), "http://") {
		v.errorf(f+".tls", "set for an http:// url, where it would be ignored: use https://")
	}
	if t := r.TLS; t != nil && (t.CertFile == "") != (t.KeyFile == "") {
		v.errorf(f+".tls", "certFile and keyFile must be set together")
	}
	switch r.ProtocolVersion {
	case "", RemoteWriteProtocol1, RemoteWriteProtocol2:
	default:
		v.errorf(f+".protocolVersion", "must be %q or %q, got %q", RemoteWriteProtocol1, RemoteWriteProtocol2, r.ProtocolVersion)
	}
}

// url checks a target URL. Errors never repeat a password in it: they
// reach the object's status, logs and the admin API.
func (v *validator) url(field, s string) {
	u, err := url.Parse(s)
	switch {
	case err != nil:
		v.errorf(field, "invalid URL (%s)", urlParseProblem(err))
	case u.Scheme != "http" && u.Scheme != "https":
		v.errorf(field, "URL %q must use http or https", u.Redacted())
	case u.Host == "":
		v.errorf(field, "URL %q has no host", u.Redacted())
	}
}

// urlParseProblem is what url.Parse found wrong, without the URL it quotes.
func urlParseProblem(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err.Error()
	}
	return "unparsable"
}
