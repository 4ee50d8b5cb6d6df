{{/* Labels every object of the release carries; part-of=chaperone is what the operator's caBundle patcher selects. */}}
{{- define "chaperone.labels" -}}
app.kubernetes.io/name: chaperone
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
app.kubernetes.io/part-of: chaperone
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version }}
{{- with .component }}
app.kubernetes.io/component: {{ . }}
{{- end }}
{{- end -}}

{{/* Pod selector of one component. */}}
{{- define "chaperone.selector" -}}
app.kubernetes.io/name: chaperone
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* <registry>/<component>@<digest> when a digest is given, else <registry>/<component>:<tag or appVersion>. */}}
{{- define "chaperone.image" -}}
{{- $img := .root.Values.image -}}
{{- $digest := get $img.digests .component -}}
{{- if $digest -}}
{{ printf "%s/%s@%s" $img.registry .component $digest }}
{{- else -}}
{{ printf "%s/%s:%s" $img.registry .component (default .root.Chart.AppVersion $img.tag) }}
{{- end -}}
{{- end -}}

{{/* The operator's ServiceAccount as the apiserver names it. */}}
{{- define "chaperone.operatorUser" -}}
system:serviceaccount:{{ .Release.Namespace }}:chaperone-operator
{{- end -}}

{{/* Egress to the apiserver (NetworkPolicy rule). */}}
{{- define "chaperone.apiServerEgress" -}}
- ports:
  {{- range .Values.networkPolicy.apiServerPorts }}
    - { protocol: TCP, port: {{ . }} }
  {{- end }}
  {{- with .Values.networkPolicy.apiServerCidrs }}
  to:
    {{- range . }}
    - ipBlock: { cidr: {{ . | quote }} }
    {{- end }}
  {{- end }}
- ports:
    - { protocol: UDP, port: 53 }
    - { protocol: TCP, port: 53 }
  to:
    - namespaceSelector:
        matchLabels: { kubernetes.io/metadata.name: kube-system }
      podSelector:
        matchLabels: { k8s-app: kube-dns }
{{- end -}}
