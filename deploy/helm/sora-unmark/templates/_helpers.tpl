{{- define "sora.name" -}}{{ .Release.Name }}-sora{{- end -}}
{{- define "sora.secret" -}}{{ .Values.secrets.existingSecret | default (printf "%s-secrets" (include "sora.name" .)) }}{{- end -}}
{{- define "sora.tritonHeadless" -}}{{ include "sora.name" . }}-triton-headless{{- end -}}
{{- define "sora.labels" -}}
app.kubernetes.io/name: sora-unmark
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end -}}
{{- define "sora.orchestratorEnv" -}}
- name: DATABASE_URL
  valueFrom: {secretKeyRef: {name: {{ include "sora.secret" . }}, key: DATABASE_URL}}
- name: S3_ACCESS_KEY
  valueFrom: {secretKeyRef: {name: {{ include "sora.secret" . }}, key: S3_ACCESS_KEY}}
- name: S3_SECRET_KEY
  valueFrom: {secretKeyRef: {name: {{ include "sora.secret" . }}, key: S3_SECRET_KEY}}
- name: API_KEY
  valueFrom: {secretKeyRef: {name: {{ include "sora.secret" . }}, key: API_KEY}}
- name: S3_ENDPOINT
  value: {{ .Values.s3.endpoint | quote }}
- name: S3_BUCKET
  value: {{ .Values.s3.bucket | quote }}
- name: S3_REGION
  value: {{ .Values.s3.region | quote }}
- name: S3_PREFIX
  value: {{ .Values.s3.prefix | quote }}
- name: NODE_ID
  valueFrom: {fieldRef: {fieldPath: metadata.name}}
- name: DATA_DIR
  value: /scratch
{{- end -}}
