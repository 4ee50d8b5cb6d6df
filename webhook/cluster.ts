// What the webhook reads from the API per admission request. An interface, so the handlers can be
// driven by the real apiserver in tests and by anything else without mocks of client-node.
import {
  ApiException,
  CoreV1Api,
  CustomObjectsApi,
  type KubeConfig,
  type V1Pod,
} from '@kubernetes/client-node';
import { SESSION_POLICY } from '../crds/index.ts';
import type { RawSessionPolicy } from './policy.ts';

export interface ClusterReader {
  namespaceLabels(name: string): Promise<Record<string, string>>;
  listSessionPolicies(namespace: string): Promise<RawSessionPolicy[]>;
  getSessionPolicy(namespace: string, name: string): Promise<RawSessionPolicy | undefined>;
  /** undefined: the webhook may not read Secrets there, so it cannot tell. */
  secretExists(namespace: string, name: string): Promise<boolean | undefined>;
  /** A pod (CONNECT admission: exec, attach, port-forward). Absent: every pod counts as injected. */
  getPod?(namespace: string, name: string): Promise<V1Pod | undefined>;
}

export function isStatus(error: unknown, code: number): boolean {
  return error instanceof ApiException && error.code === code;
}

export function apiClusterReader(kc: KubeConfig): ClusterReader {
  const core = kc.makeApiClient(CoreV1Api);
  const custom = kc.makeApiClient(CustomObjectsApi);
  const policyApi = {
    group: SESSION_POLICY.group,
    version: SESSION_POLICY.version,
    plural: SESSION_POLICY.plural,
  };
  return {
    async namespaceLabels(name) {
      const ns = await core.readNamespace({ name });
      return ns.metadata?.labels ?? {};
    },
    async listSessionPolicies(namespace) {
      const list = (await custom.listNamespacedCustomObject({ ...policyApi, namespace })) as {
        items?: RawSessionPolicy[];
      };
      return list.items ?? [];
    },
    async getSessionPolicy(namespace, name) {
      try {
        return (await custom.getNamespacedCustomObject({
          ...policyApi,
          namespace,
          name,
        })) as RawSessionPolicy;
      } catch (error) {
        if (isStatus(error, 404)) return undefined;
        throw error;
      }
    },
    async getPod(namespace, name) {
      try {
        return await core.readNamespacedPod({ namespace, name });
      } catch (error) {
        if (isStatus(error, 404)) return undefined;
        throw error;
      }
    },
    async secretExists(namespace, name) {
      try {
        await core.readNamespacedSecret({ namespace, name });
        return true;
      } catch (error) {
        if (isStatus(error, 404)) return false;
        if (isStatus(error, 403)) return undefined;
        throw error;
      }
    },
  };
}

/** ClusterIPs of the cluster DNS Service ("namespace/name"), or [] when it does not exist. */
export async function discoverDnsResolvers(kc: KubeConfig, service: string): Promise<string[]> {
  const [namespace, name] = service.split('/');
  if (!namespace || !name) throw new Error(`dns.discoverService must be namespace/name, got ${service}`);
  try {
    const svc = await kc.makeApiClient(CoreV1Api).readNamespacedService({ namespace, name });
    const ips = svc.spec?.clusterIPs ?? (svc.spec?.clusterIP ? [svc.spec.clusterIP] : []);
    return ips.filter((ip) => ip !== 'None');
  } catch (error) {
    if (isStatus(error, 404)) return [];
    throw error;
  }
}
