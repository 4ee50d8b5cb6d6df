// `kubectl chaperone sessions`: the namespace's recent sessions, read from the store its
// SessionPolicies record to, with the user's own S3 credentials (AWS_* environment or profile; the
// policy's credentials Secret is the sidecar's and is never read). The listing is the CLI's.
import { CustomObjectsApi } from '@kubernetes/client-node';
import { CliError } from '../cli/index.ts';
import { SESSION_POLICY } from '../crds/index.ts';
import { type ListedSession, listSessions, openStore, type SessionFilter } from '../recording/index.ts';
import { type Kube, kubeCall } from './kube.ts';

interface PolicyStore {
  url: string;
  endpoint?: string;
  region?: string;
  forcePathStyle?: boolean;
}
interface RawPolicy {
  metadata: { name: string };
  spec?: { recording?: { store?: PolicyStore } };
}

export interface StoreChoice {
  /** Policies recording to this store. */
  policies: string[];
  store: PolicyStore;
}

/** Each distinct store the namespace's SessionPolicies record to (or the one --policy names). */
export async function policyStores(kube: Kube, policy?: string): Promise<StoreChoice[]> {
  const { group, version, plural } = SESSION_POLICY;
  const namespace = kube.namespace;
  const api = kube.kc.makeApiClient(CustomObjectsApi);
  const access = {
    verb: policy ? 'get' : 'list',
    group,
    resource: plural,
    namespace,
    ...(policy ? { name: policy } : {}),
  };
  const policies: RawPolicy[] = policy
    ? [
        (await kubeCall(kube.kc, access, () =>
          api.getNamespacedCustomObject({ group, version, plural, namespace, name: policy }),
        )) as RawPolicy,
      ]
    : (
        (await kubeCall(kube.kc, access, () =>
          api.listNamespacedCustomObject({ group, version, plural, namespace }),
        )) as { items: RawPolicy[] }
      ).items;
  const stores = new Map<string, StoreChoice>();
  for (const p of policies) {
    const store = p.spec?.recording?.store;
    if (!store?.url) continue;
    const key = `${store.url} ${store.endpoint ?? ''}`;
    const found = stores.get(key);
    if (found) found.policies.push(p.metadata.name);
    else stores.set(key, { policies: [p.metadata.name], store });
  }
  if (stores.size === 0)
    throw new CliError(`no SessionPolicy in namespace ${namespace} names a recording store`);
  return [...stores.values()];
}

/**
 * Lists the namespace's sessions in each store. The endpoint: --endpoint, else AWS_ENDPOINT_URL(_S3)
 * (the policy's endpoint is often a cluster-internal name), else the policy's.
 */
export async function namespaceSessions(
  choice: StoreChoice,
  filter: SessionFilter,
  endpointFlag: string | undefined,
  env: NodeJS.ProcessEnv = process.env,
): Promise<ListedSession[]> {
  const { store } = choice;
  const envEndpoint = env.AWS_ENDPOINT_URL_S3 ?? env.AWS_ENDPOINT_URL;
  const endpoint = endpointFlag ?? envEndpoint ?? store.endpoint;
  const opened = store.url.startsWith('s3://')
    ? openStore(store.url, {
        ...(endpoint ? { endpoint } : {}),
        region: env.AWS_REGION ?? env.AWS_DEFAULT_REGION ?? store.region ?? 'us-east-1',
        forcePathStyle: endpoint ? true : (store.forcePathStyle ?? false),
      })
    : openStore(store.url);
  const found: ListedSession[] = [];
  for await (const s of listSessions(opened, filter)) found.push(s);
  return found;
}
