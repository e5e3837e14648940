{{/* The chart name, overridable. */}}
{{- define "sealgate.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The full name of the release's objects: release-chart, or the release
name alone when it already contains the chart name. */}}
{{- define "sealgate.fullname" -}}
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

{{- define "sealgate.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels on every object. */}}
{{- define "sealgate.labels" -}}
helm.sh/chart: {{ include "sealgate.chart" . }}
{{ include "sealgate.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: sealgate
{{- end }}

{{/* Labels that select the pods (never change them: selectors are immutable). */}}
{{- define "sealgate.selectorLabels" -}}
app.kubernetes.io/name: {{ include "sealgate.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "sealgate.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "sealgate.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "sealgate.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* Secret names: the existing one, or the one the chart creates. */}}
{{- define "sealgate.keysSecretName" -}}
{{- default (printf "%s-keys" (include "sealgate.fullname" .)) .Values.keys.existingSecret }}
{{- end }}

{{- define "sealgate.upstreamSecretName" -}}
{{- default (printf "%s-upstream" (include "sealgate.fullname" .)) .Values.upstreamCredentials.existingSecret }}
{{- end }}

{{/* sealgate.toml as rendered from config.toml. */}}
{{- define "sealgate.configToml" -}}
{{- tpl .Values.config.toml . }}
{{- end }}

{{/* terminationGracePeriodSeconds: preStop sleep + shutdown_grace + margin.
Fails rendering when config.toml's shutdown_grace disagrees with
drain.shutdownGraceSeconds, since the pod would then be killed mid-drain
(or wait for nothing). */}}
{{- define "sealgate.terminationGracePeriodSeconds" -}}
{{- $d := .Values.drain }}
{{- $toml := include "sealgate.configToml" . }}
{{- $line := regexFind "(?m)^\\s*shutdown_grace\\s*=\\s*\"[^\"]*\"" $toml }}
{{- $configured := "30s" }}
{{- if $line }}
{{- $configured = regexReplaceAll "^[^\"]*\"([^\"]*)\"$" (trim $line) "${1}" }}
{{- end }}
{{- $expected := printf "%ds" (int $d.shutdownGraceSeconds) }}
{{- if ne $configured $expected }}
{{- fail (printf "config.toml sets [proxy] shutdown_grace = %q but drain.shutdownGraceSeconds is %d: write shutdown_grace = %q, or change drain.shutdownGraceSeconds" $configured (int $d.shutdownGraceSeconds) $expected) }}
{{- end }}
{{- add (int $d.preStopSleepSeconds) (int $d.shutdownGraceSeconds) (int $d.marginSeconds) }}
{{- end }}
