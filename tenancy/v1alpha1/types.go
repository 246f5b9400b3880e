package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// API identity of the MetricAccess resource.
const (
	// Group is the API group of MetricAccess.
	Group = "observability.ethos.io"
	// Version is the API version of MetricAccess.
	Version = "v1alpha1"
	// APIVersion is the apiVersion every MetricAccess manifest must carry.
	APIVersion = Group + "/" + Version
	// Kind is the kind every MetricAccess manifest must carry.
	Kind = "MetricAccess"
)

// Resource is the MetricAccess API resource, of the CRD in deploy/kubernetes/crd.
var Resource = schema.GroupVersionResource{Group: Group, Version: Version, Resource: "metricaccesses"}

// MetricAccess grants the tenant of its namespace read access to the series
// its patterns select. Several MetricAccess objects in one namespace combine:
// the tenant sees the union of what each allows.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=ma,scope=Namespaced
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Patterns",type=string,JSONPath=`.spec.metrics`
// +kubebuilder:printcolumn:name="Isolated",type=boolean,JSONPath=`.spec.metricIsolation`,priority=1
// +kubebuilder:printcolumn:name="Copied-Until",type=date,JSONPath=`.status.remoteWrite.copiedUntil`
// +kubebuilder:printcolumn:name="Sent",type=integer,JSONPath=`.status.remoteWrite.samplesSent`,priority=1
// +kubebuilder:printcolumn:name="Copy-State",type=string,JSONPath=`.status.remoteWrite.state`
// +kubebuilder:printcolumn:name="Copy-Error",type=string,JSONPath=`.status.remoteWrite.lastError`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type MetricAccess struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   MetricAccessSpec   `json:"spec"`
	Status MetricAccessStatus `json:"status,omitempty"`
}

// MetricAccessList is a list of MetricAccess objects.
//
// +kubebuilder:object:root=true
type MetricAccessList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []MetricAccess `json:"items"`
}

// MetricAccessSpec says which series the tenant may see.
type MetricAccessSpec struct {
	// Source names the upstream Prometheus the access applies to.
	// Informational for now.
	// +optional
	Source string `json:"source,omitempty"`

	// MetricIsolation, when true, ANDs namespace="<metadata.namespace>" into
	// every pattern, so the tenant sees only series of its own namespace.
	// Default: false.
	// +optional
	MetricIsolation bool `json:"metricIsolation,omitempty"`

	// Metrics lists the patterns the tenant may see. Each is one of:
	// a metric name (`http_requests_total`), a regular expression on the
	// metric name (`http_.*`, anchored as Prometheus anchors), or a series
	// selector (`{job="my-app"}`, `up{job="my-app"}`).
	// At most 256 patterns; more go into further objects.
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=256
	// +kubebuilder:validation:items:MinLength=1
	// +kubebuilder:validation:items:MaxLength=1024
	Metrics []string `json:"metrics"`

	// LabelSelectors are label equalities ANDed into every pattern.
	// +optional
	LabelSelectors map[string]string `json:"labelSelectors,omitempty"`

	// RemoteWrite copies the allowed series to a target. Optional.
	// +optional
	RemoteWrite *RemoteWriteSpec `json:"remoteWrite,omitempty"`
}

// MetricAccessStatus is the observed state of a MetricAccess.
type MetricAccessStatus struct {
	// Conditions are the latest observations of the object's state.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// RemoteWrite is the state of the copy to spec.remoteWrite's target,
	// written by the prom_remote_write app.
	// +optional
	RemoteWrite *RemoteWriteStatus `json:"remoteWrite,omitempty"`
}

// RemoteWriteStatus is the state of a MetricAccess's copy to its target.
type RemoteWriteStatus struct {
	// Target is the kind and URL of the target, without credentials.
	// +optional
	Target string `json:"target,omitempty"`
	// State is what the copy is doing: starting, copying, retrying (the
	// target or the source fails; lastError says how), state_unwritable
	// (its progress cannot be saved; nothing is sent until it can), or
	// refused (the target is invalid).
	// +optional
	State string `json:"state,omitempty"`
	// StateSince is when State last changed.
	// +optional
	StateSince *metav1.Time `json:"stateSince,omitempty"`
	// CopiedUntil: the target has acknowledged every sample up to this time.
	// +optional
	CopiedUntil *metav1.Time `json:"copiedUntil,omitempty"`
	// LastSuccess is when a copy pass last completed.
	// +optional
	LastSuccess *metav1.Time `json:"lastSuccess,omitempty"`
	// LastError says why the last pass failed; empty once one succeeds.
	// +optional
	LastError string `json:"lastError,omitempty"`
	// LastErrorTime is when LastError happened.
	// +optional
	LastErrorTime *metav1.Time `json:"lastErrorTime,omitempty"`
	// SamplesSent counts the samples the target acknowledged since the
	// copying proxy started.
	// +optional
	SamplesSent int64 `json:"samplesSent,omitempty"`
	// SamplesDropped counts the samples the target refused for good since
	// the copying proxy started.
	// +optional
	SamplesDropped int64 `json:"samplesDropped,omitempty"`
	// SamplesResentRefused counts the samples of batches resent after
	// their answer was lost (a timeout, a restart) that the target refused
	// since the copying proxy started: most likely held already, not lost.
	// +optional
	SamplesResentRefused int64 `json:"samplesResentRefused,omitempty"`
}

// RemoteWriteSpec copies the series a MetricAccess allows to one target:
// the original proxy's spec.remoteWrite, field for field.
type RemoteWriteSpec struct {
	// Enabled turns copying on. Default: false.
	// +optional
	Enabled bool `json:"enabled,omitempty"`

	// Interval between copies, e.g. "30s". At least 5s. Default: the
	// prom_remote_write app's interval (30s unless the admin changed it).
	// +optional
	Interval *metav1.Duration `json:"interval,omitempty"`

	// Target is where the series go. Required when Enabled.
	// +optional
	Target *RemoteWriteTargetSpec `json:"target,omitempty"`

	// ExtraLabels are added to every copied series.
	// +optional
	ExtraLabels map[string]string `json:"extraLabels,omitempty"`

	// HonorLabels keeps the series' labels when they clash with ExtraLabels.
	// Default: false (ExtraLabels win).
	// +optional
	HonorLabels bool `json:"honorLabels,omitempty"`
}

// Target types: the values of spec.remoteWrite.target.type.
const (
	TargetPrometheus  = "prometheus"
	TargetPushgateway = "pushgateway"
	TargetRemoteWrite = "remote_write"
)

// RemoteWriteTargetSpec is spec.remoteWrite.target: Type names the kind of
// target, and the block of that name (and no other) configures it.
//
// Type is checked by the proxy, not by the CRD schema, so that an object
// with a wrong type is stored and its Ready condition says what is wrong.
type RemoteWriteTargetSpec struct {
	// Type is "prometheus", "pushgateway" or "remote_write". Required.
	// +optional
	Type string `json:"type,omitempty"`

	// Prometheus is a Prometheus Service with the remote-write receiver
	// enabled. For type "prometheus".
	// +optional
	Prometheus *PrometheusTarget `json:"prometheus,omitempty"`

	// Pushgateway is a Prometheus Pushgateway. For type "pushgateway".
	// +optional
	Pushgateway *PushgatewayTarget `json:"pushgateway,omitempty"`

	// RemoteWrite is any Prometheus remote-write endpoint. For type
	// "remote_write".
	// +optional
	RemoteWrite *RemoteWriteTarget `json:"remoteWrite,omitempty"`
}

// DefaultPrometheusWritePath is the path of PrometheusTarget when none is set.
const DefaultPrometheusWritePath = "/api/v1/write"

// PrometheusTarget is a Prometheus Service in the tenant's namespace.
type PrometheusTarget struct {
	// ServiceName is the Kubernetes Service of the Prometheus. Required.
	ServiceName string `json:"serviceName"`
	// ServicePort is the Service's port. Required.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=65535
	ServicePort int `json:"servicePort"`
	// Path of the remote-write receiver. Default: /api/v1/write.
	// +optional
	Path string `json:"path,omitempty"`
}

// WritePath returns Path, or DefaultPrometheusWritePath if Path is empty.
func (p *PrometheusTarget) WritePath() string {
	if p.Path == "" {
		return DefaultPrometheusWritePath
	}
	return p.Path
}

// PushgatewayTarget is a Prometheus Pushgateway, given either by
// ServiceName and ServicePort or by URL.
type PushgatewayTarget struct {
	// ServiceName is a Pushgateway Service in the tenant's namespace.
	// Requires ServicePort; mutually exclusive with URL.
	// +optional
	ServiceName string `json:"serviceName,omitempty"`
	// ServicePort is the Service's port.
	// +optional
	ServicePort int `json:"servicePort,omitempty"`
	// JobName is the job label of the pushed group. Required.
	JobName string `json:"jobName"`
	// URL of a Pushgateway outside the cluster, under the admin's
	// allow_url. Mutually exclusive with ServiceName/ServicePort.
	// +optional
	URL string `json:"url,omitempty"`
	// GroupingKey are further labels identifying the pushed group.
	// +optional
	GroupingKey map[string]string `json:"groupingKey,omitempty"`
}

// Remote-write protocol versions.
const (
	RemoteWriteProtocol1 = "1.0"
	RemoteWriteProtocol2 = "2.0"
)

// RemoteWriteTarget is any Prometheus remote-write endpoint.
type RemoteWriteTarget struct {
	// URL of the endpoint. Required.
	URL string `json:"url"`
	// Headers added to every request.
	// +optional
	Headers map[string]string `json:"headers,omitempty"`
	// BasicAuth credentials.
	// +optional
	BasicAuth *BasicAuth `json:"basicAuth,omitempty"`
	// TLS settings for https URLs.
	// +optional
	TLS *TLSConfig `json:"tls,omitempty"`
	// ProtocolVersion is "1.0" or "2.0". Default: "1.0".
	// +optional
	// +kubebuilder:validation:Enum="1.0";"2.0"
	ProtocolVersion string `json:"protocolVersion,omitempty"`
}

// Protocol returns ProtocolVersion, or "1.0" if it is empty.
func (r *RemoteWriteTarget) Protocol() string {
	if r.ProtocolVersion == "" {
		return RemoteWriteProtocol1
	}
	return r.ProtocolVersion
}

// BasicAuth holds a username and exactly one source of the password.
type BasicAuth struct {
	// Username. Required.
	Username string `json:"username"`
	// PasswordSecret names a key of a Secret in the object's namespace.
	// +optional
	PasswordSecret *SecretKeyRef `json:"passwordSecret,omitempty"`
	// PasswordFile is a file under <credentials_dir>/<namespace>/ of the
	// prom_remote_write app.
	// +optional
	PasswordFile string `json:"passwordFile,omitempty"`
}

// SecretKeyRef selects a key of a Secret.
type SecretKeyRef struct {
	// Name of the Secret. Required.
	Name string `json:"name"`
	// Key in the Secret. Required.
	Key string `json:"key"`
}

// TLSConfig configures the TLS client.
type TLSConfig struct {
	// CAFile verifies the server. Default: the system roots.
	// +optional
	CAFile string `json:"caFile,omitempty"`
	// CertFile is the client certificate; requires KeyFile.
	// +optional
	CertFile string `json:"certFile,omitempty"`
	// KeyFile is the client key; requires CertFile.
	// +optional
	KeyFile string `json:"keyFile,omitempty"`
	// ServerName overrides the name verified in the server certificate.
	// +optional
	ServerName string `json:"serverName,omitempty"`
	// InsecureSkipVerify disables server verification. Default: false.
	// +optional
	InsecureSkipVerify bool `json:"insecureSkipVerify,omitempty"`
}

// Key returns "namespace/name", the object's identity.
func (m *MetricAccess) Key() string { return m.Namespace + "/" + m.Name }
