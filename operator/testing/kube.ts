// Helpers for tests against the real control plane of the test environment.
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import {
  ApiextensionsV1Api,
  CoreV1Api,
  type KubeConfig,
  KubernetesObjectApi,
  PatchStrategy,
  type V1CustomResourceDefinition,
} from '@kubernetes/client-node';
import { parse } from 'yaml';
import { type UntilOptions, until } from '../../test/testing/until.ts';
import type { OperatorConfig } from '../config.ts';
import { type OperatorConfigInput, parseOperatorConfig } from '../config.ts';
import { type RunningOperator, startOperator } from '../operator.ts';

const crdFiles = ['sessionpolicies.chaperone.dev.yaml', 'sessionapprovals.chaperone.dev.yaml'];

/** Applies the CRDs of crds/ (server-side apply) and waits until the apiserver serves them. */
export async function installCrds(kubeConfig: KubeConfig): Promise<void> {
  const objects = KubernetesObjectApi.makeApiClient(kubeConfig);
  const ext = kubeConfig.makeApiClient(ApiextensionsV1Api);
  for (const file of crdFiles) {
    const crd = parse(
      await readFile(new URL(`../../crds/${file}`, import.meta.url), 'utf8'),
    ) as V1CustomResourceDefinition;
    await objects.patch(crd, undefined, undefined, 'chaperone-tests', true, PatchStrategy.ServerSideApply);
    await waitFor(`CRD ${crd.metadata?.name} established`, async () => {
      const current = await ext.readCustomResourceDefinition({ name: crd.metadata!.name! });
      return current.status?.conditions?.some((c) => c.type === 'Established' && c.status === 'True');
    });
  }
}

export function uniqueName(prefix: string): string {
  return `${prefix}-${randomBytes(3).toString('hex')}`;
}

export async function createNamespace(kubeConfig: KubeConfig, prefix: string): Promise<string> {
  const name = uniqueName(prefix);
  await kubeConfig.makeApiClient(CoreV1Api).createNamespace({ body: { metadata: { name } } });
  return name;
}

/** Polls `check` until it returns a truthy value (the suite's poller, every 100 ms here). */
export function waitFor<T>(
  what: string,
  check: () => Promise<T | undefined | null | false> | T | undefined | null | false,
  options: UntilOptions = {},
): Promise<T> {
  return until(what, check, { intervalMs: 100, ...options });
}

/** An operator config for tests: one namespace, fast retries, health server on a free port. */
export function testOperatorConfig(input: OperatorConfigInput): OperatorConfig {
  return parseOperatorConfig({
    notReadyRequeueSeconds: 1,
    logLevel: process.env.CHAPERONE_TEST_LOG_LEVEL ?? 'silent',
    server: { host: '127.0.0.1', port: 0 },
    certificates: { mode: 'certManager' },
    storage: { bootstrap: false },
    ...input,
  });
}

/** The Secrets a typical policy refers to: signing key and upstream credentials. */
export async function createPolicySecrets(kubeConfig: KubeConfig, namespace: string): Promise<void> {
  const core = kubeConfig.makeApiClient(CoreV1Api);
  const { privateKey } = generateKeyPairSync('ed25519');
  await core.createNamespacedSecret({
    namespace,
    body: {
      metadata: { name: 'signing-key' },
      stringData: { privateKey: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString() },
    },
  });
  await core.createNamespacedSecret({
    namespace,
    body: { metadata: { name: 'db-credentials' }, stringData: { username: 'app', password: 'secret' } },
  });
}

/** A valid SessionPolicy manifest with a postgres target and a local store. */
export function samplePolicy(name: string, namespace: string, overrides: Record<string, unknown> = {}) {
  return {
    apiVersion: 'chaperone.dev/v1alpha1',
    kind: 'SessionPolicy',
    metadata: { name, namespace },
    spec: {
      podSelector: { matchLabels: { app: name } },
      targets: [
        {
          name: 'db',
          protocol: 'postgres',
          upstream: { host: 'db.data.svc.cluster.local', port: 5432 },
          listenPort: 15432,
          credentialsSecret: { name: 'db-credentials' },
        },
      ],
      recording: { store: { url: 'file:///var/lib/chaperone' }, signingKeySecret: { name: 'signing-key' } },
      ...overrides,
    },
  };
}

/** Where SessionPolicies are served (CustomObjectsApi calls spread this). */
export const POLICY_API = { group: 'chaperone.dev', version: 'v1alpha1', plural: 'sessionpolicies' } as const;

export interface OperatorUnderTest {
  namespace: string;
  operator: RunningOperator;
  /** Stops the operator once, however often it is called (a test may stop it early). */
  stopOperator(): Promise<void>;
  /** Stops the operator, then deletes the namespace. */
  stop(): Promise<void>;
}

/**
 * The setup every operator test against a real apiserver shares: CRDs installed, a fresh namespace
 * with the Secrets a sample policy names, and an operator watching only that namespace.
 * `beforeStart` adds what a test needs before the operator's first reconcile.
 */
export async function startOperatorInNamespace(
  kubeConfig: KubeConfig,
  prefix: string,
  options: { config?: Partial<OperatorConfigInput>; beforeStart?: (namespace: string) => Promise<void> } = {},
): Promise<OperatorUnderTest> {
  await installCrds(kubeConfig);
  const namespace = await createNamespace(kubeConfig, prefix);
  await createPolicySecrets(kubeConfig, namespace);
  await options.beforeStart?.(namespace);
  const operator = await startOperator({
    kubeConfig,
    config: testOperatorConfig({
      watchNamespace: namespace,
      leaderElection: { enabled: false },
      ...options.config,
    }),
  });
  let stopped: Promise<void> | undefined;
  const stopOperator = () => {
    stopped ??= operator.stop();
    return stopped;
  };
  return {
    namespace,
    operator,
    stopOperator,
    async stop() {
      await stopOperator();
      await kubeConfig
        .makeApiClient(CoreV1Api)
        .deleteNamespace({ name: namespace })
        .catch(() => undefined);
    },
  };
}
