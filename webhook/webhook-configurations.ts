// The Mutating/ValidatingWebhookConfiguration objects, as a pure function: URL mode for tests and the
// demo (webhook running as a local process), service mode for the chart.
import type {
  AdmissionregistrationV1WebhookClientConfig,
  V1LabelSelector,
  V1MutatingWebhookConfiguration,
  V1RuleWithOperations,
  V1ValidatingWebhookConfiguration,
} from '@kubernetes/client-node';
import { SESSION_APPROVAL, SESSION_POLICY } from '../crds/index.ts';
import { LABELS, OPERATOR_CHILD_LABEL, WEBHOOK_PATHS } from './constants.ts';

export type WebhookClient =
  | { mode: 'url' /** https://host:port, without path */; baseUrl: string }
  | { mode: 'service'; namespace: string; name: string; port?: number };

export interface WebhookConfigurationsOptions {
  client: WebhookClient;
  /** PEM bundle of the CA that signed the serving certificate. */
  caBundle: string;
  systemNamespace: string;
  /** Name of both configuration objects (default chaperone). */
  name?: string;
  timeoutSeconds?: number;
  /** Extra namespace labels every webhook requires (tests scope their webhooks to their namespaces). */
  extraNamespaceLabels?: Record<string, string>;
}

export interface WebhookConfigurations {
  mutating: V1MutatingWebhookConfiguration;
  validating: V1ValidatingWebhookConfiguration;
}

function clientConfig(
  client: WebhookClient,
  path: string,
  caBundle: string,
): AdmissionregistrationV1WebhookClientConfig {
  const ca = Buffer.from(caBundle, 'utf8').toString('base64');
  if (client.mode === 'url') return { url: `${client.baseUrl.replace(/\/$/, '')}${path}`, caBundle: ca };
  return {
    service: { namespace: client.namespace, name: client.name, port: client.port ?? 443, path },
    caBundle: ca,
  };
}

function rule(
  operations: string[],
  group: string,
  version: string,
  resources: string[],
): V1RuleWithOperations {
  return { operations, apiGroups: [group], apiVersions: [version], resources, scope: 'Namespaced' };
}

function jsonCopy<T>(value: T): T {
  return JSON.parse(JSON.stringify(value)) as T;
}

export function renderWebhookConfigurations(options: WebhookConfigurationsOptions): WebhookConfigurations {
  const name = options.name ?? 'chaperone';
  const timeoutSeconds = options.timeoutSeconds ?? 10;
  const extra = options.extraNamespaceLabels ?? {};
  // Never the system namespace (the webhook would wait for itself) nor kube-system.
  const excludeSystem = {
    key: 'kubernetes.io/metadata.name',
    operator: 'NotIn',
    values: [options.systemNamespace, 'kube-system'],
  };
  const recordedNamespaces: V1LabelSelector = {
    matchLabels: { [LABELS.recording]: 'enabled', ...extra },
    matchExpressions: [excludeSystem],
  };
  const allNamespaces: V1LabelSelector = {
    ...(Object.keys(extra).length > 0 ? { matchLabels: { ...extra } } : {}),
    matchExpressions: [excludeSystem],
  };
  const common = {
    admissionReviewVersions: ['v1'],
    sideEffects: 'None',
    failurePolicy: 'Fail',
    matchPolicy: 'Equivalent',
    timeoutSeconds,
  };
  const client = (path: string) => clientConfig(options.client, path, options.caBundle);
  const metadata = {
    name,
    labels: { [LABELS.partOf]: 'chaperone', 'app.kubernetes.io/component': 'webhook' },
  };
  const approvals = SESSION_APPROVAL.plural;
  // Attribution: workloads whose pod templates become pods get their launcher stamped.
  const workloadRules = [
    rule(['CREATE', 'UPDATE'], 'apps', 'v1', ['deployments', 'replicasets', 'statefulsets', 'daemonsets']),
    rule(['CREATE', 'UPDATE'], 'batch', 'v1', ['jobs', 'cronjobs']),
  ];

  // A JSON copy, so no two fields share an object (YAML would render them as anchors and aliases).
  return jsonCopy({
    mutating: {
      apiVersion: 'admissionregistration.k8s.io/v1',
      kind: 'MutatingWebhookConfiguration',
      metadata,
      webhooks: [
        {
          name: 'pods.chaperone.dev',
          clientConfig: client(WEBHOOK_PATHS.mutatePods),
          rules: [
            rule(['CREATE'], '', 'v1', ['pods']),
            rule(['UPDATE'], '', 'v1', ['pods/ephemeralcontainers']),
          ],
          namespaceSelector: recordedNamespaces,
          // Strip and re-inject when a later webhook changed the pod (idempotent).
          reinvocationPolicy: 'IfNeeded',
          ...common,
        },
        {
          name: 'sessionapprovals.chaperone.dev',
          clientConfig: client(WEBHOOK_PATHS.mutateSessionApprovals),
          rules: [
            rule(['UPDATE'], SESSION_APPROVAL.group, SESSION_APPROVAL.version, [`${approvals}/status`]),
          ],
          namespaceSelector: allNamespaces,
          reinvocationPolicy: 'Never',
          ...common,
        },
        {
          name: 'workloads.chaperone.dev',
          clientConfig: client(WEBHOOK_PATHS.mutateWorkloads),
          rules: workloadRules,
          namespaceSelector: recordedNamespaces,
          reinvocationPolicy: 'IfNeeded',
          ...common,
        },
      ],
    },
    validating: {
      apiVersion: 'admissionregistration.k8s.io/v1',
      kind: 'ValidatingWebhookConfiguration',
      metadata,
      webhooks: [
        {
          name: 'pods.chaperone.dev',
          clientConfig: client(WEBHOOK_PATHS.validatePods),
          rules: [
            rule(['CREATE', 'UPDATE'], '', 'v1', ['pods']),
            rule(['UPDATE'], '', 'v1', ['pods/ephemeralcontainers']),
            // kubectl exec/attach into chaperone's containers, port-forward into injected pods.
            rule(['CONNECT'], '', 'v1', ['pods/exec', 'pods/attach', 'pods/portforward']),
          ],
          namespaceSelector: recordedNamespaces,
          ...common,
        },
        {
          // The operator's ConfigMaps (the sidecar's configuration) and NetworkPolicies.
          name: 'operator-children.chaperone.dev',
          clientConfig: client(WEBHOOK_PATHS.validateOperatorChildren),
          rules: [
            rule(['CREATE', 'UPDATE', 'DELETE'], '', 'v1', ['configmaps']),
            rule(['CREATE', 'UPDATE', 'DELETE'], 'networking.k8s.io', 'v1', ['networkpolicies']),
          ],
          namespaceSelector: recordedNamespaces,
          objectSelector: { matchLabels: { [OPERATOR_CHILD_LABEL.key]: OPERATOR_CHILD_LABEL.value } },
          ...common,
        },
        {
          name: 'sessionpolicies.chaperone.dev',
          clientConfig: client(WEBHOOK_PATHS.validateSessionPolicies),
          rules: [
            rule(['CREATE', 'UPDATE'], SESSION_POLICY.group, SESSION_POLICY.version, [SESSION_POLICY.plural]),
          ],
          namespaceSelector: allNamespaces,
          ...common,
        },
        {
          name: 'sessionapprovals.chaperone.dev',
          clientConfig: client(WEBHOOK_PATHS.validateSessionApprovals),
          rules: [
            rule(['UPDATE'], SESSION_APPROVAL.group, SESSION_APPROVAL.version, [
              approvals,
              `${approvals}/status`,
            ]),
          ],
          namespaceSelector: allNamespaces,
          ...common,
        },
        {
          name: 'workloads.chaperone.dev',
          clientConfig: client(WEBHOOK_PATHS.validateWorkloads),
          rules: workloadRules,
          namespaceSelector: recordedNamespaces,
          ...common,
        },
      ],
    },
  });
}
