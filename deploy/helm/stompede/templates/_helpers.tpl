{{/* Chart name, at most 63 characters (a DNS label). */}}
{{- define "stompede.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Resource name prefix: the release name, plus the chart name unless it is already in it. */}}
{{- define "stompede.fullname" -}}
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

{{/* Labels that select this release's pods. */}}
{{- define "stompede.selectorLabels" -}}
app.kubernetes.io/name: {{ include "stompede.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "stompede.labels" -}}
{{ include "stompede.selectorLabels" . }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "stompede.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "stompede.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The TLS Secret: an existing one, else the one the chart creates (or expects). */}}
{{- define "stompede.tlsSecretName" -}}
{{- default (printf "%s-tls" (include "stompede.fullname" .)) .Values.tls.existingSecret }}
{{- end }}

{{- define "stompede.authSecretName" -}}
{{- default (printf "%s-auth" (include "stompede.fullname" .)) .Values.auth.existingSecret }}
{{- end }}

{{/* Refuse values that would give a broken install, with a message saying why. */}}
{{- define "stompede.validate" -}}
{{- $drain := add (mul .Values.shutdown.preStopSleepSeconds 1000) .Values.shutdown.graceMs }}
{{- if le (mul .Values.shutdown.terminationGracePeriodSeconds 1000) (int64 $drain) }}
{{- fail (printf "shutdown.terminationGracePeriodSeconds (%v) must exceed shutdown.preStopSleepSeconds + shutdown.graceMs/1000 (%v s), or the kubelet kills sessions mid-drain" .Values.shutdown.terminationGracePeriodSeconds (div $drain 1000)) }}
{{- end }}
{{- if and (not .Values.auth.existingSecret) (not .Values.auth.usersToml) }}
{{- fail "set auth.usersToml (users.toml with argon2id hashes from `stompede passwd`) or auth.existingSecret: listeners off loopback need secure mode and the admin port needs an admin user" }}
{{- end }}
{{- if and .Values.tls.enabled (not .Values.tls.existingSecret) (or (not .Values.tls.cert) (not .Values.tls.key)) }}
{{- fail "tls.enabled needs tls.existingSecret, or both tls.cert and tls.key" }}
{{- end }}
{{- if and .Values.stompTlsService.enabled (not .Values.tls.enabled) }}
{{- fail "stompTlsService.enabled needs tls.enabled" }}
{{- end }}
{{- end }}
