{{/* The chart's name, and the name of its objects: the release name when it contains the chart's. */}}
{{- define "prom-tenant.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "prom-tenant.fullname" -}}
{{- if contains .Chart.Name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{- define "prom-tenant.selectorLabels" -}}
app.kubernetes.io/name: {{ include "prom-tenant.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "prom-tenant.labels" -}}
{{ include "prom-tenant.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "prom-tenant.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) }}
{{- end }}
{{- end }}

{{/*
The pod mounts its ServiceAccount token only when something in it talks to the API server:
token reviews, the MetricAccess watch, the copier's Leases/Secrets/Services, discovery.
*/}}
{{- define "prom-tenant.needsToken" -}}
{{- if or (eq .Values.auth.type "kubernetes") .Values.tenants.kubernetes.enabled .Values.remoteWrite.enabled .Values.discovery.enabled .Values.rbac.leases }}true{{ end }}
{{- end }}

{{/* The leader-election Role is bound for remote write with leader election, or on request. */}}
{{- define "prom-tenant.leases" -}}
{{- if or .Values.rbac.leases (and .Values.remoteWrite.enabled .Values.remoteWrite.leaderElection) }}true{{ end }}
{{- end }}

{{/*
Where the copier's Leases and progress ConfigMaps live, and the only namespace where the proxy
may write ConfigMaps: never the release namespace (validate refuses it).
*/}}
{{- define "prom-tenant.stateNamespace" -}}
{{- .Values.remoteWrite.stateNamespace | default (printf "%s-state" .Release.Namespace) }}
{{- end }}

{{/* Refuses values that would install something broken or open; renders nothing. */}}
{{- define "prom-tenant.validate" -}}
{{- if not (has .Values.auth.type (list "kubernetes" "basic" "header")) }}
{{- fail (printf "auth.type %q: want kubernetes, basic or header" .Values.auth.type) }}
{{- end }}
{{- if and (eq .Values.auth.type "basic") (not .Values.auth.basic.users) (not .Values.caddyfile) }}
{{- fail "auth.type=basic needs at least one user in auth.basic.users (namespace: bcrypt hash, from caddy hash-password)" }}
{{- end }}
{{- if and .Values.remoteWrite.enabled (gt (int .Values.replicas) 1) (not .Values.remoteWrite.leaderElection) }}
{{- fail (printf "remoteWrite with replicas=%d needs remoteWrite.leaderElection=true: without it every replica copies every tenant and the receivers refuse the duplicates; or set replicas=1" (int .Values.replicas)) }}
{{- end }}
{{- range $user, $hash := .Values.auth.basic.users }}
{{- /* The hashes of team-a-secret and team-b-secret, the chart's examples until 0.1.0: public passwords. */}}
{{- if has $hash (list "$2a$14$8ouDaV8mZaWUB5IrGHM1Jei4jIVYiYtf3tUHRFj.dQVhnC5BHLGZm" "$2a$14$ZNz4fn6c2hGvC/D7b3AO4usHONLnpX7kTM2hFdgH38oySF.C9vWSa") }}
{{- fail (printf "auth.basic.users.%s is the hash of a published example password: hash a password of your own with caddy hash-password" $user) }}
{{- end }}
{{- end }}
{{- if and .Values.replicaLabels (ne .Values.backend "thanos") }}
{{- fail "replicaLabels are Thanos Query's replica labels: they need backend=thanos" }}
{{- end }}
{{- /* backendParams' engines, as backendparams.go's presets and catalogue: prom_tenant refuses
a parameter of another engine than backend at start, so the chart refuses it at render. */}}
{{- $paramEngines := dict "thanos" "thanos" "dedup" "thanos" "partial_response" "thanos" "max_source_resolution" "thanos" "engine" "thanos" "replicaLabels[]" "thanos" "victoriametrics" "victoriametrics" "nocache" "victoriametrics" "round_digits" "victoriametrics" "latency_offset" "victoriametrics" }}
{{- range .Values.backendParams }}
{{- $engine := get $paramEngines (toString .) }}
{{- if not $engine }}
{{- fail (printf "backendParams %q: want the presets thanos or victoriametrics, or one of their parameters (%s)" (toString .) (without (keys $paramEngines | sortAlpha) "thanos" "victoriametrics" | join ", ")) }}
{{- end }}
{{- if ne $engine ($.Values.backend | default "prometheus") }}
{{- fail (printf "backendParams %q is a %s parameter: it needs backend=%s (the backend is %s, which does not read it; prom_tenant would refuse it at start)" (toString .) $engine $engine ($.Values.backend | default "prometheus")) }}
{{- end }}
{{- end }}
{{- if eq .Values.auth.type "header" }}
{{- if ne .Values.service.type "ClusterIP" }}
{{- fail (printf "auth.type=header with service.type=%s: the header is believed, so anyone who can reach the port is any tenant; header needs service.type=ClusterIP, networkPolicy.enabled=true and auth.header.trustedFrom" .Values.service.type) }}
{{- end }}
{{- if not .Values.networkPolicy.enabled }}
{{- fail "auth.type=header with networkPolicy.enabled=false: the header is believed, so anyone who can reach the port is any tenant; header needs networkPolicy.enabled=true and auth.header.trustedFrom" }}
{{- end }}
{{- if not .Values.auth.header.trustedFrom }}
{{- fail "auth.type=header needs auth.header.trustedFrom: the header is believed, so anyone who can reach the port is any tenant; list only the component that authenticates clients and sets X-Tenant-Namespace (it replaces networkPolicy.from)" }}
{{- end }}
{{- /* A peer that admits everything would undo the three checks above. */}}
{{- range $i, $peer := .Values.auth.header.trustedFrom }}
{{- $ns := get $peer "namespaceSelector" }}
{{- $pods := get $peer "podSelector" }}
{{- if and (hasKey $peer "namespaceSelector") (not (and $ns (or $ns.matchLabels $ns.matchExpressions))) (not (and $pods (or $pods.matchLabels $pods.matchExpressions))) }}
{{- fail (printf "auth.header.trustedFrom[%d] has an empty namespaceSelector and no podSelector: it admits every pod in the cluster, and the header is believed, so every pod would be any tenant; select the namespace and the pods of the component that sets X-Tenant-Namespace" $i) }}
{{- end }}
{{- with get $peer "ipBlock" }}
{{- if regexMatch "/0+$" (toString (get . "cidr")) }}
{{- fail (printf "auth.header.trustedFrom[%d].ipBlock.cidr %q admits every address, and the header is believed, so anyone would be any tenant; give the addresses of the component that sets X-Tenant-Namespace" $i (toString (get . "cidr"))) }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
{{- if and (include "prom-tenant.leases" .) (eq (include "prom-tenant.stateNamespace" .) .Release.Namespace) }}
{{- fail (printf "remoteWrite.stateNamespace %q is the release namespace: the Role that writes Leases and progress ConfigMaps there could also rewrite the chart's ConfigMaps (Caddyfile, tenants); choose a namespace of its own" .Release.Namespace) }}
{{- end }}
{{- if include "prom-tenant.leases" . }}
{{- $state := include "prom-tenant.stateNamespace" . }}
{{- $tenantNamespaces := concat .Values.tenants.kubernetes.namespaces .Values.remoteWrite.servicesNamespaces .Values.remoteWrite.secretsNamespaces }}
{{- range .Values.metricAccesses }}{{ $tenantNamespaces = append $tenantNamespaces .namespace }}{{ end }}
{{- if has $state $tenantNamespaces }}
{{- fail (printf "remoteWrite.stateNamespace %q is a tenant namespace: its tenants could edit the copies' progress and skip or replay samples; choose a namespace of its own" $state) }}
{{- end }}
{{- /* Watching every namespace, any namespace may be a tenant's: only a namespace the chart
creates, which Helm refuses when it exists already, is known to be nobody else's. */}}
{{- if and .Values.tenants.kubernetes.enabled (not .Values.tenants.kubernetes.namespaces) (not .Values.remoteWrite.createStateNamespace) }}
{{- fail (printf "remoteWrite.createStateNamespace=false with tenants.kubernetes watching every namespace: any namespace may be a tenant's, so the chart cannot tell that stateNamespace %q is not one (its tenants could edit the copies' progress and skip or replay samples); keep createStateNamespace=true, so that Helm refuses a namespace that exists already, or list tenants.kubernetes.namespaces" $state) }}
{{- end }}
{{- end }}
{{- /* As the schema's pattern: upstream is written into the Caddyfile twice, and a quote,
backtick or backslash there would join or escape its tokens. */}}
{{- if and (not .Values.caddyfile) (regexMatch "[\\s{}#\"'`\\\\]" (.Values.upstream | toString)) }}
{{- fail (printf "upstream %q: want one address (http://host:port), without spaces, braces, #, quotes, backticks or backslashes" .Values.upstream) }}
{{- end }}
{{- if and (not .Values.caddyfile) .Values.remoteWrite.enabled (not .Values.remoteWrite.source) (not .Values.upstream) }}
{{- fail "remoteWrite.enabled needs remoteWrite.source or upstream: the copier reads its tenants' series there (remote read)" }}
{{- end }}
{{- if and (not .Values.caddyfile) (not .Values.upstream) (not .Values.discovery.enabled) }}
{{- fail "upstream is empty: set it to the Prometheus HTTP API the proxy forwards to (--set upstream=http://prometheus.monitoring.svc:9090), or enable discovery" }}
{{- end }}
{{- if and (not .Values.caddyfile) (not .Values.tenants.kubernetes.enabled) (not .Values.tenants.files) }}
{{- fail "no tenant source: enable tenants.kubernetes or give tenants.files" }}
{{- end }}
{{- end }}

{{/*
The Caddyfile written from the values (or .Values.caddyfile verbatim). Tabs, as `caddy fmt`
writes them: an unformatted Caddyfile adapts with a warning.
*/}}
{{- define "prom-tenant.caddyfile" -}}
{{- if .Values.caddyfile }}
{{- .Values.caddyfile }}
{{- else -}}
{
	# The admin API stays inside the pod.
	admin localhost:2019
	# Bound slow clients: without these a POST sending one byte every 8 s was held
	# for minutes, each such connection holding a goroutine and up to 1 MiB of body.
	servers {
		timeouts {
			read_header {{ .Values.timeouts.readHeader }} # the request line and headers
			read_body {{ .Values.timeouts.readBody }} # the whole request, body included (at most max_request_body, 1 MiB)
			# The whole answer, from the end of the headers: it includes the upstream's
			# evaluation, so keep it above the upstream's query timeout (Prometheus's
			# --query.timeout, 2m by default) or long range queries are cut off.
			write {{ .Values.timeouts.write }}
			idle {{ .Values.timeouts.idle }} # an unused keep-alive connection
		}
	}
	prom_tenancy {
{{- if .Values.tenants.files }}
		directory /etc/prom-tenant/tenants
{{- end }}
{{- if .Values.tenants.kubernetes.enabled }}
{{- if .Values.tenants.kubernetes.namespaces }}
		kubernetes {
			namespaces {{ join " " .Values.tenants.kubernetes.namespaces }}
		}
{{- else }}
		kubernetes
{{- end }}
{{- end }}
	}
{{- if .Values.remoteWrite.enabled }}
	# Copies each tenant's allowed series to its MetricAccess's remoteWrite target.
	prom_remote_write {{ .Values.remoteWrite.source | default .Values.upstream }} {
		kubernetes
{{- if not .Values.remoteWrite.leaderElection }}
		leader_election off
{{- else }}
		# Leases and progress apart from the chart's ConfigMaps (remoteWrite.stateNamespace).
		leader_election {
			namespace {{ include "prom-tenant.stateNamespace" . }}
		}
{{- end }}
{{- range .Values.remoteWrite.allowURLs }}
		allow_url {{ . }}
{{- end }}
	}
{{- end }}
}

# Probes get their own listener: prom_tenant refuses every path it does not serve.
:{{ .Values.ports.health }} {
	respond /healthz 200
}

# The tenant proxy. Plain HTTP inside the cluster: terminate TLS at the Ingress, or give
# this site a name and let Caddy's TLS do it.
:{{ .Values.ports.proxy }} {
{{- if eq .Values.auth.type "kubernetes" }}
	# The token is reviewed with the pod's ServiceAccount (in-cluster configuration), and
	# removed before the request goes upstream.
	authenticate_kubernetes {
		namespace {http.request.header.X-Tenant-Namespace}
	}
	prom_tenant {
		tenant {http.vars.prom_tenant.namespace} # exactly the namespace that was authorized
{{- else if eq .Values.auth.type "basic" }}
	basic_auth {
{{- range $user, $hash := .Values.auth.basic.users }}
		{{ $user }} {{ $hash }}
{{- end }}
	}
	prom_tenant {
		tenant {http.auth.user.id} # the user name is the namespace
{{- else }}
	# NO AUTHENTICATION: the client's X-Tenant-Namespace header names the tenant.
	prom_tenant {
		tenant {http.request.header.X-Tenant-Namespace} # believed as sent
{{- end }}
{{- if .Values.backend }}
		backend {{ .Values.backend }}
{{- end }}
{{- with .Values.replicaLabels }}
		replica_labels {{ join " " . }} # as Thanos Query's --query.replica-label flags
{{- end }}
{{- with .Values.backendParams }}
		backend_params {{ join " " . }}
{{- end }}
	}
{{- if .Values.discovery.enabled }}
	reverse_proxy {
		dynamic kubernetes {
			namespace {{ .Values.discovery.namespace }}
			selector {{ .Values.discovery.selector }}
			port {{ .Values.discovery.port }}
{{- if ne .Values.discovery.kind "endpointslices" }}
			kind {{ .Values.discovery.kind }}
{{- end }}
		}
	}
{{- else }}
	reverse_proxy {{ .Values.upstream }}
{{- end }}
}
{{- end }}
{{- end }}
