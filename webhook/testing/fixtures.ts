// Shared fixtures of the webhook tests: the golden policy and a webhook config.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { V1Pod } from '@kubernetes/client-node';
import { parse } from 'yaml';
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
