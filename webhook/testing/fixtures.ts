// Shared fixtures of the webhook tests: the golden policy and a webhook config.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { V1Pod } from '@kubernetes/client-node';
import { parse } from 'yaml';
import type { AdmissionRequest } from '../admission.ts';
import { parseWebhookConfig, type WebhookConfig } from '../config.ts';
import { type RawSessionPolicy, type ResolvedPolicy, resolvePolicy } from '../policy.ts';

export const TESTDATA = join(import.meta.dirname, '..', 'testdata');

export async function readYaml<T>(relative: string): Promise<T> {
  return parse(await readFile(join(TESTDATA, relative), 'utf8')) as T;
}

export const testConfig: WebhookConfig = parseWebhookConfig({
  sidecarImage: 'ghcr.io/chaperone/chaperone:0.1.0',
  initImage: 'ghcr.io/chaperone/chaperone-init:0.1.0',
  dns: { resolvers: ['10.96.0.10'], discoverService: null },
});

/** The AdmissionRequest for a pod CREATE in namespace `agents`, by `username`. */
export function podCreateReview(object: V1Pod, username: string): AdmissionRequest {
  return {
    uid: 'u1',
    kind: { group: '', version: 'v1', kind: 'Pod' },
    resource: { group: '', version: 'v1', resource: 'pods' },
    namespace: 'agents',
    operation: 'CREATE',
    userInfo: { username },
    object,
  };
}

export async function goldenPolicy(): Promise<{ raw: RawSessionPolicy; resolved: ResolvedPolicy }> {
  const raw = await readYaml<RawSessionPolicy>('pods/policy.yaml');
  return { raw, resolved: resolvePolicy(raw, 'agents') };
}

/** A plain agent pod (label app=agent, UID/GID 1000) that `patch` may change before it is created. */
export function agentPod(name: string, patch: (pod: V1Pod) => void = () => {}): V1Pod {
  const pod: V1Pod = {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, labels: { app: 'agent' } },
    spec: {
      securityContext: { runAsUser: 1000, runAsGroup: 1000 },
      containers: [{ name: 'agent', image: 'registry.example/agent:1' }],
    },
  };
  patch(pod);
  return pod;
}

/** The PostgreSQL target of ordersPolicySpec, on port 15432 in the pod. */
const ORDERS_TARGET = {
  name: 'orders-db',
  protocol: 'postgres',
  upstream: { host: '10.213.0.2', port: 5432 },
  listenPort: 15432,
  credentialsSecret: { name: 'orders-db-credentials' },
};

/**
 * The SessionPolicy spec the tests against a real apiserver share: pods labelled app=agent, one
 * PostgreSQL target `orders-db` (credentials in Secret orders-db-credentials), recordings to S3.
 * `target` changes fields of the target; every other field replaces the spec's own.
 */
export function ordersPolicySpec({
  target = {},
  ...spec
}: {
  target?: Record<string, unknown>;
  [field: string]: unknown;
} = {}) {
  return {
    podSelector: { matchLabels: { app: 'agent' } },
    targets: [{ ...ORDERS_TARGET, ...target }],
    recording: { store: { url: 's3://recordings/test' }, signingKeySecret: { name: 'signing-key' } },
    ...spec,
  };
}
