{{/*
Names, labels and the rules every template shares. Checks of values that JSON Schema
cannot express live in "controlplane.validate", which every manifest includes first.
*/}}

{{- define "controlplane.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "controlplane.fullname" -}}
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

{{/* Cluster-scoped objects are shared by every release: their names carry the namespace. */}}
{{- define "controlplane.clusterName" -}}
{{- printf "%s-%s" (include "controlplane.fullname" .) .Release.Namespace | trunc 240 | trimSuffix "-" }}
{{- end }}

{{- define "controlplane.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "controlplane.selectorLabels" -}}
app.kubernetes.io/name: {{ include "controlplane.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* The API server's pods (the migration Job's pods are not among them). */}}
{{- define "controlplane.serverSelectorLabels" -}}
{{ include "controlplane.selectorLabels" . }}
app.kubernetes.io/component: server
{{- end }}

{{- define "controlplane.labels" -}}
helm.sh/chart: {{ include "controlplane.chart" . }}
{{ include "controlplane.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | trunc 63 | trimSuffix "-" | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: controlplane
{{- end }}

{{- define "controlplane.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "controlplane.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "controlplane.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) }}
{{- end }}

{{/* The Secret with the admin token (and the PostgreSQL URL when there is one). */}}
{{- define "controlplane.secretName" -}}
{{- .Values.existingSecret.name | default (include "controlplane.fullname" .) }}
{{- end }}

{{- define "controlplane.adminTokenKey" -}}
{{- if .Values.existingSecret.name }}{{ .Values.existingSecret.adminTokenKey }}{{ else }}admin-token{{ end }}
{{- end }}

{{/* The Secret's key holding CONTROLPLANE_SECRET_KEYS; empty when there is none. */}}
{{- define "controlplane.secretKeysKey" -}}
{{- if .Values.existingSecret.name }}{{ .Values.existingSecret.secretKeysKey }}{{ else if trim .Values.secretKeys }}secret-keys{{ end }}
{{- end }}

{{/*
Where the database URL comes from: "secret" (a PostgreSQL URL, in the existing Secret or
the one the chart creates) or "sqlite" (a file on the data volume; the URL holds no
credential, so it is a plain variable).
*/}}
{{- define "controlplane.databaseSource" -}}
{{- if .Values.existingSecret.name }}
{{- if .Values.existingSecret.databaseUrlKey }}secret{{ else }}sqlite{{ end }}
{{- else if and .Values.database.url (not (hasPrefix "sqlite" .Values.database.url)) }}secret
{{- else }}sqlite
{{- end }}
{{- end }}

{{- define "controlplane.isSqlite" -}}
{{- if eq (include "controlplane.databaseSource" .) "sqlite" }}true{{ end }}
{{- end }}

{{- define "controlplane.databaseUrlKey" -}}
{{- if .Values.existingSecret.name }}{{ .Values.existingSecret.databaseUrlKey }}{{ else }}database-url{{ end }}
{{- end }}

{{- define "controlplane.dataDir" -}}/var/lib/controlplane{{- end }}

{{- define "controlplane.sqliteUrl" -}}
{{- if hasPrefix "sqlite" .Values.database.url }}{{ .Values.database.url }}
{{- else }}{{ printf "sqlite:///%s" .Values.database.sqlitePath }}
{{- end }}
{{- end }}

{{/*
The env entry of the database URL, for the server and the migration Job.
Takes (dict "root" $ "secretName" NAME); NAME empty: the release's Secret.
*/}}
{{- define "controlplane.databaseEnv" -}}
- name: CONTROLPLANE_DATABASE_URL
{{- $root := .root }}
{{- if include "controlplane.isSqlite" $root }}
  value: {{ include "controlplane.sqliteUrl" $root | quote }}
{{- else }}
  valueFrom:
    secretKeyRef:
      name: {{ .secretName | default (include "controlplane.secretName" $root) }}
      key: {{ include "controlplane.databaseUrlKey" $root }}
{{- end }}
{{- end }}

{{- define "controlplane.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 10001
runAsGroup: 10001
fsGroup: 10001
fsGroupChangePolicy: OnRootMismatch
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{- define "controlplane.containerSecurityContext" -}}
runAsNonRoot: true
runAsUser: 10001
runAsGroup: 10001
readOnlyRootFilesystem: true
allowPrivilegeEscalation: false
privileged: false
capabilities:
  drop:
    - ALL
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{/*
What the Kubernetes driver (controlplane/kube/) does, and nothing more: server-side apply
and delete of Deployments, Services and HTTPRoutes (InferencePools when asked), and
reading pods and events to explain why a version is not ready. No secrets, no
configmaps, no pods/exec, no subresources.
*/}}
{{- define "controlplane.rbacRules" -}}
- apiGroups: ["apps"]
  resources: ["deployments"]
  verbs: ["get", "list", "watch", "create", "update", "patch", "delete"]
- apiGroups: [""]
  resources: ["services"]
  verbs: ["get", "list", "watch", "create", "update", "patch", "delete"]
{{- if .Values.rbac.gatewayApi }}
- apiGroups: ["gateway.networking.k8s.io"]
  resources: ["httproutes"]
  verbs: ["get", "list", "watch", "create", "update", "patch", "delete"]
{{- end }}
{{- if .Values.rbac.inferencePools }}
- apiGroups: ["inference.networking.k8s.io"]
  resources: ["inferencepools"]
  verbs: ["get", "list", "watch", "create", "update", "patch", "delete"]
{{- else if .Values.rbac.adapters }}
- apiGroups: ["inference.networking.k8s.io"]
  resources: ["inferencepools"]
  verbs: ["get", "list", "watch"]
{{- end }}
{{- if .Values.rbac.adapters }}
- apiGroups: ["llm-d.ai", "inference.networking.x-k8s.io"]
  resources: ["inferencemodelrewrites"]
  verbs: ["get", "list", "watch", "create", "update", "patch", "delete"]
{{- end }}
{{- if and .Values.rbac.adapters .Values.rbac.adapterReadinessGate }}
- apiGroups: [""]
  resources: ["pods/status"]
  verbs: ["patch"]
{{- end }}
- apiGroups: [""]
  resources: ["pods", "events"]
  verbs: ["get", "list", "watch"]
{{- end }}

{{/*
Checks across values that the schema cannot express. Each message says what to change.
*/}}
{{- define "controlplane.validate" -}}
{{- $sqlite := include "controlplane.isSqlite" . }}
{{- if and (gt (int .Values.replicas) 1) $sqlite }}
{{- fail (printf "replicas is %d but the database is SQLite, a file only one pod may own: set database.url (or existingSecret.databaseUrlKey) to a PostgreSQL URL, or set replicas to 1" (int .Values.replicas)) }}
{{- end }}
{{- if and (not .Values.existingSecret.name) (not (trim .Values.adminToken)) }}
{{- fail "adminToken is empty: the chart will not create a Secret without an admin token. Pass --set adminToken=$(openssl rand -hex 32), or set existingSecret.name to a Secret you manage" }}
{{- end }}
{{- if and .Values.existingSecret.name .Values.database.url (not (hasPrefix "sqlite" .Values.database.url)) }}
{{- fail "database.url holds a PostgreSQL URL but existingSecret.name is set, so the chart creates no Secret to keep it in: put the URL in your Secret and name its key in existingSecret.databaseUrlKey (and leave database.url empty)" }}
{{- end }}
{{- if $sqlite }}
{{- $prefix := printf ":///%s/" (include "controlplane.dataDir" .) }}
{{- if not (contains $prefix (include "controlplane.sqliteUrl" .)) }}
{{- fail (printf "the SQLite database %q is not on the data volume: put it under %s/ (database.sqlitePath), the only writable place besides /tmp" (include "controlplane.sqliteUrl" .) (include "controlplane.dataDir" .)) }}
{{- end }}
{{- if .Values.migrationJob.enabled }}
{{- fail "migrationJob.enabled needs PostgreSQL: with SQLite the server migrates its own file on start (leave migrationJob.enabled false)" }}
{{- end }}
{{- end }}
{{- if not .Values.existingSecret.name }}
{{- range $i, $key := splitList "," .Values.secretKeys }}
{{- if and (trim $key) (lt (len (trim $key)) 32) }}
{{- fail (printf "secretKeys: key %d has %d characters; each key needs at least 32 (e.g. openssl rand -hex 32)" (add1 $i) (len (trim $key))) }}
{{- end }}
{{- end }}
{{- end }}
{{- range $key, $_ := .Values.config.extra }}
{{- if has $key (list "CONTROLPLANE_ADMIN_TOKEN" "CONTROLPLANE_DATABASE_URL" "CONTROLPLANE_SECRET_KEYS") }}
{{- fail (printf "config.extra.%s would put a secret in the ConfigMap: use adminToken, database.url, secretKeys or existingSecret instead" $key) }}
{{- end }}
{{- end }}
{{- if and .Values.rbac.create (not .Values.serviceAccount.create) (not .Values.serviceAccount.name) }}
{{- fail "serviceAccount.create is false and serviceAccount.name is empty: name the ServiceAccount to bind the driver's Roles to (the chart will not grant them to the namespace's default account)" }}
{{- end }}
{{- if and .Values.rbac.create .Values.rbac.clusterWide .Values.rbac.namespaces }}
{{- fail "rbac.clusterWide grants every namespace already: leave rbac.namespaces empty with it" }}
{{- end }}
{{- end }}
