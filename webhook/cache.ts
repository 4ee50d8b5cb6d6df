// An informer-backed ClusterReader: Namespaces and SessionPolicies from watches, so the common
// admission (inject) needs no API call. Answers that would skip or refuse a pod are confirmed
// against the live API by the pod handler, so a cache lagging behind a fresh policy or namespace
// label can delay nothing and weaken nothing. Informers are restarted whenever they stop.
import {
  CoreV1Api,
  CustomObjectsApi,
  type KubeConfig,
  type KubernetesListObject,
  makeInformer,
  type V1Namespace,
} from '@kubernetes/client-node';
import { SESSION_POLICY } from '../crds/index.ts';
import type { ClusterReader } from './cluster.ts';
import type { RawSessionPolicy } from './policy.ts';

export interface CachedClusterReader extends ClusterReader {
  /** Resolves once both caches hold a full list. */
  ready: Promise<void>;
  stop(): Promise<void>;
}

type Log = (msg: string) => void;

export function cachedClusterReader(
  kc: KubeConfig,
  live: ClusterReader,
  log: Log = () => {},
): CachedClusterReader {
  const core = kc.makeApiClient(CoreV1Api);
  const custom = kc.makeApiClient(CustomObjectsApi);
  const api = { group: SESSION_POLICY.group, version: SESSION_POLICY.version, plural: SESSION_POLICY.plural };
  const namespaces = makeInformer<V1Namespace>(kc, '/api/v1/namespaces', () => core.listNamespace());
  const policies = makeInformer<RawSessionPolicy & { apiVersion?: string; kind?: string }>(
    kc,
    `/apis/${api.group}/${api.version}/${api.plural}`,
    () => custom.listClusterCustomObject(api) as Promise<KubernetesListObject<RawSessionPolicy>>,
  );
  let stopped = false;
  for (const [what, informer] of [
    ['namespaces', namespaces],
    ['sessionpolicies', policies],
  ] as const) {
    informer.on('error', (error: unknown) => {
      if (stopped) return;
      log(`${what} informer stopped (${error instanceof Error ? error.message : String(error)}); restarting`);
      setTimeout(() => {
        if (!stopped) informer.start().catch(() => {});
      }, 1000).unref();
    });
  }
  const ready = Promise.all([namespaces.start(), policies.start()]).then(() => {});
  return {
    ready,
    async namespaceLabels(name) {
      const cached = namespaces.get(name);
      return cached ? (cached.metadata?.labels ?? {}) : live.namespaceLabels(name);
    },
    async listSessionPolicies(namespace) {
      return [...policies.list(namespace)];
    },
    async getSessionPolicy(namespace, name) {
      return policies.get(name, namespace) ?? live.getSessionPolicy(namespace, name);
    },
    secretExists: (namespace, name) => live.secretExists(namespace, name),
    async stop() {
      stopped = true;
      await Promise.allSettled([namespaces.stop(), policies.stop()]);
    },
  };
}
