{{/*
The chart name, overridable with nameOverride.
*/}}
{{- define "sidebus.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The full name of the release's objects (63 characters at most, a DNS label). The release name is
used as is when it already contains the chart name.
*/}}
{{- define "sidebus.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/*
Chart name and version, for the helm.sh/chart label.
*/}}
{{- define "sidebus.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Labels on every object.
*/}}
{{- define "sidebus.labels" -}}
helm.sh/chart: {{ include "sidebus.chart" . }}
{{ include "sidebus.selectorLabels" . }}
{{- if .Chart.AppVersion }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/*
Labels that select the pods (they never change between upgrades).
*/}}
{{- define "sidebus.selectorLabels" -}}
app.kubernetes.io/name: {{ include "sidebus.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
The ServiceAccount the pods run as.
*/}}
{{- define "sidebus.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "sidebus.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
The sidebus image reference; the tag defaults to the chart's appVersion.
*/}}
{{- define "sidebus.image" -}}
{{- printf "%s:%s" .Values.sidebus.image.repository (default .Chart.AppVersion .Values.sidebus.image.tag | toString) }}
{{- end }}

{{/*
Where the state volume is mounted; it is sidebus's state_dir.
*/}}
{{- define "sidebus.stateDir" -}}
/var/lib/sidebus
{{- end }}

{{/*
sidebus.toml from .Values.sidebus.config, with `listen` and `state_dir` set by the chart.
Helm reads every number in values as a float and toToml then writes 3 as `3.0`, which sidebus
refuses for counts; whole numbers lose the `.0` again (strings are quoted, so they never match).
*/}}
{{- define "sidebus.configToml" -}}
{{- $config := deepCopy (default (dict) .Values.sidebus.config) }}
{{- $_ := set $config "listen" (printf "0.0.0.0:%d" (int .Values.sidebus.port)) }}
{{- $_ = set $config "state_dir" (include "sidebus.stateDir" .) }}
{{- if not $config.brokers }}
{{- /* No brokers: the memory broker named `default`, as sidebus runs without a config, holding
at most 128 MiB of events (sidebus's default is 256 MiB) so that with the pipeline and sidebus
itself it stays inside the default memory limit of 256Mi. */}}
{{- $_ = set $config "brokers" (dict "default" (dict "kind" "memory" "max_bytes" "128MiB")) }}
{{- end }}
{{- regexReplaceAll "(?m)= (-?[0-9]+)\\.0$" (toToml $config) "= ${1}" }}
{{- end }}
