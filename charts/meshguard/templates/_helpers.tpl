{{/* The chart name, shortened to the 63 characters a label value allows. */}}
{{- define "meshguard.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The full name of the resources: fullnameOverride, else the release name when
it already contains the chart name, else RELEASE-CHART. The webhook
configurations, Service, ClusterRoles and TLS Secret are named after it.
*/}}
{{- define "meshguard.fullname" -}}
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

{{/* Labels on every resource. */}}
{{- define "meshguard.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "meshguard.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: meshguard
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Labels that select the meshguard pods. */}}
{{- define "meshguard.selectorLabels" -}}
app.kubernetes.io/name: {{ include "meshguard.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* The service account name. */}}
{{- define "meshguard.serviceAccountName" -}}
{{- default (include "meshguard.fullname" .) .Values.serviceAccount.name }}
{{- end }}

{{/* The service account's username, the identity MESH0215 trusts. */}}
{{- define "meshguard.username" -}}
{{- printf "system:serviceaccount:%s:%s" .Release.Namespace (include "meshguard.serviceAccountName" .) }}
{{- end }}

{{/* The TLS Secret name. */}}
{{- define "meshguard.secretName" -}}
{{- default (printf "%s-tls" (include "meshguard.fullname" .)) .Values.certificates.secretName }}
{{- end }}

{{/* The image reference: repository, then @digest or :tag (default appVersion). */}}
{{- define "meshguard.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* Namespaces the workload webhooks skip: the system namespaces, the configured ones and the release namespace, sorted and unique. */}}
{{- define "meshguard.webhookExcludedNamespaces" -}}
{{- append (concat .Values.systemNamespaces .Values.webhook.excludeNamespaces) .Release.Namespace | uniq | sortAlpha | toJson }}
{{- end }}

{{/* Namespaces that never get managed NetworkPolicies: the system namespaces, the configured ones and the release namespace, unique. */}}
{{- define "meshguard.netpolExcludedNamespaces" -}}
{{- append (concat .Values.systemNamespaces .Values.networkPolicies.excludeNamespaces) .Release.Namespace | uniq | join "," }}
{{- end }}

{{/* Namespaces workload and namespace rules skip (--system-namespaces): the system namespaces and mesh.systemNamespaces, unique. */}}
{{- define "meshguard.ruleSystemNamespaces" -}}
{{- concat .Values.systemNamespaces .Values.mesh.systemNamespaces | uniq | join "," }}
{{- end }}

{{/* The namespaceSelector that skips the excluded namespaces. */}}
{{- define "meshguard.excludeSelector" -}}
namespaceSelector:
  matchExpressions:
    - key: kubernetes.io/metadata.name
      operator: NotIn
      values: {{ include "meshguard.webhookExcludedNamespaces" . }}
{{- end }}

{{/* The clientConfig of a webhook; the path is the argument's second element. */}}
{{- define "meshguard.clientConfig" -}}
{{- $ := index . 0 }}
clientConfig:
  service:
    name: {{ include "meshguard.fullname" $ }}
    namespace: {{ $.Release.Namespace }}
    path: {{ index . 1 }}
    port: {{ $.Values.webhook.service.port }}
{{- end }}

{{/* Annotations of the webhook configurations: cert-manager's CA injection in that mode. */}}
{{- define "meshguard.webhookAnnotations" -}}
{{- $a := dict }}
{{- if eq .Values.certificates.mode "cert-manager" }}
{{- $_ := set $a "cert-manager.io/inject-ca-from" (printf "%s/%s" .Release.Namespace (include "meshguard.fullname" .)) }}
{{- end }}
{{- with .Values.webhook.annotations }}
{{- $a = merge $a . }}
{{- end }}
{{- if $a -}}
annotations:
{{- toYaml $a | nindent 2 }}
{{- end }}
{{- end }}

{{/* key=value,key=value from a map, sorted, for the --netpol-*-pod-labels flags. */}}
{{- define "meshguard.labelFlag" -}}
{{- $out := list }}
{{- range $k, $v := . }}
{{- $out = append $out (printf "%s=%s" $k $v) }}
{{- end }}
{{- join "," $out }}
{{- end }}

{{/*
The matchCondition that skips UPDATEs changing none of what the rules read
(webhook.MatchChangesWhatRulesRead; test/chart checks they are equal).
*/}}
{{- define "meshguard.matchChangesWhatRulesRead" -}}
- name: changes-what-rules-read
  expression: >-
    request.operation != 'UPDATE' ||
    (has(object.spec) ? object.spec : {}) != (has(oldObject.spec) ? oldObject.spec : {}) ||
    (has(object.template) ? object.template : {}) != (has(oldObject.template) ? oldObject.template : {}) ||
    (has(object.subsets) ? object.subsets : []) != (has(oldObject.subsets) ? oldObject.subsets : []) ||
    (has(object.ports) ? object.ports : []) != (has(oldObject.ports) ? oldObject.ports : []) ||
    (has(object.endpoints) ? object.endpoints : []) != (has(oldObject.endpoints) ? oldObject.endpoints : []) ||
    (has(object.data) ? object.data : {}) != (has(oldObject.data) ? oldObject.data : {}) ||
    (has(object.metadata.labels) ? object.metadata.labels : {}) != (has(oldObject.metadata.labels) ? oldObject.metadata.labels : {}) ||
    (has(object.metadata.annotations) ? object.metadata.annotations : {}) != (has(oldObject.metadata.annotations) ? oldObject.metadata.annotations : {})
{{- end }}
