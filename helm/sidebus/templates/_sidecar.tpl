{{/*
The sidebus container, placed in the pod's containers or, as a native sidecar, in its
initContainers.
*/}}
{{- define "sidebus.sidecarContainer" -}}
- name: sidebus
  image: {{ include "sidebus.image" . }}
  imagePullPolicy: {{ .Values.sidebus.image.pullPolicy }}
  {{- if .Values.sidebus.nativeSidecar }}
  restartPolicy: Always
  {{- end }}
  env:
    - name: SIDEBUS_CONFIG
      value: /etc/sidebus/sidebus.toml
    - name: SIDEBUS_LISTEN
      value: {{ printf "0.0.0.0:%d" (int .Values.sidebus.port) | quote }}
    - name: SIDEBUS_LOG
      value: {{ .Values.sidebus.logLevel | quote }}
    {{- with .Values.sidebus.env }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  {{- with .Values.sidebus.envFrom }}
  envFrom:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  ports:
    - name: sidebus
      containerPort: {{ .Values.sidebus.port }}
      protocol: TCP
  {{- with .Values.sidebus.startupProbe }}
  {{- if .enabled }}
  startupProbe:
    httpGet:
      path: /healthz
      port: sidebus
    {{- toYaml (omit . "enabled") | nindent 4 }}
  {{- end }}
  {{- end }}
  {{- with .Values.sidebus.livenessProbe }}
  {{- if .enabled }}
  livenessProbe:
    httpGet:
      path: /healthz
      port: sidebus
    {{- toYaml (omit . "enabled") | nindent 4 }}
  {{- end }}
  {{- end }}
  {{- with .Values.sidebus.readinessProbe }}
  {{- if .enabled }}
  readinessProbe:
    httpGet:
      path: /readyz
      port: sidebus
    {{- toYaml (omit . "enabled") | nindent 4 }}
  {{- end }}
  {{- end }}
  {{- if and (not .Values.sidebus.nativeSidecar) .Values.sidebus.preStopSleepSeconds }}
  lifecycle:
    preStop:
      exec:
        command: ["sleep", {{ .Values.sidebus.preStopSleepSeconds | toString | quote }}]
  {{- end }}
  {{- with .Values.sidebus.resources }}
  resources:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.sidebus.securityContext }}
  securityContext:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  volumeMounts:
    - name: sidebus-config
      mountPath: /etc/sidebus
      readOnly: true
    - name: sidebus-state
      mountPath: {{ include "sidebus.stateDir" . }}
{{- end }}
