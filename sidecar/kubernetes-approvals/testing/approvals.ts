// Test support shared by the approval backend's tests and the sidecar's: a namespace on the real
// apiserver where the SessionApproval CRD is established and the agent's service account holds only
// the RBAC of the contract (create/get/list/watch), and a kubeconfig acting as that account.
import { readFile } from 'node:fs/promises';
import {
  ApiextensionsV1Api,
  CoreV1Api,
  CustomObjectsApi,
  KubeConfig,
  KubernetesObjectApi,
  PatchStrategy,
  RbacAuthorizationV1Api,
  setHeaderOptions,
  type V1CustomResourceDefinition,
} from '@kubernetes/client-node';
import { parse } from 'yaml';
import { SESSION_APPROVAL } from '../../../crds/index.ts';
import type { KubeInfo } from '../../../test/env/index.ts';
import { until as untilShared } from '../../../test/testing/until.ts';

/** Where SessionApprovals live, for CustomObjectsApi calls. */
export const APPROVAL_API = {
  group: 'chaperone.dev',
  version: 'v1alpha1',
  plural: 'sessionapprovals',
} as const;

/** A SessionApproval as the tests read it back. */
export interface ApprovalObject {
  metadata: { name: string; labels?: Record<string, string> };
  spec: Record<string, unknown>;
  status?: { phase?: string; decision?: unknown };
}

/** Polls `check` (errors count as not yet) until it gives a value: the suite's poller. */
export function until<T>(what: string, check: () => Promise<T | undefined>, timeoutMs = 20_000): Promise<T> {
  return untilShared(what, check, { timeoutMs, intervalMs: 50 });
}

async function established(ext: ApiextensionsV1Api, name: string): Promise<void> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const crd = await ext.readCustomResourceDefinition({ name });
    if (crd.status?.conditions?.some((c) => c.type === 'Established' && c.status === 'True')) return;
    if (Date.now() > deadline) throw new Error(`CRD ${name} not established in 30 s`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Creates `namespace` with service account `agent`; returns a kubeconfig authenticated as it. */
export async function approvalNamespaceWithAgent(
  admin: KubeConfig,
  kube: KubeInfo,
  namespace: string,
): Promise<KubeConfig> {
  const crd = parse(
    await readFile(new URL('../../../crds/sessionapprovals.chaperone.dev.yaml', import.meta.url), 'utf8'),
  ) as V1CustomResourceDefinition;
  await KubernetesObjectApi.makeApiClient(admin).patch(
    crd,
    undefined,
    undefined,
    'chaperone-tests',
    true,
    PatchStrategy.ServerSideApply,
  );
  await established(admin.makeApiClient(ApiextensionsV1Api), crd.metadata!.name!);
  const core = admin.makeApiClient(CoreV1Api);
  await core.createNamespace({ body: { metadata: { name: namespace } } });
  const rbac = admin.makeApiClient(RbacAuthorizationV1Api);
  await core.createNamespacedServiceAccount({ namespace, body: { metadata: { name: 'agent' } } });
  await rbac.createNamespacedRole({
    namespace,
    body: {
      metadata: { name: 'chaperone-agent' },
      rules: [
        {
          apiGroups: [SESSION_APPROVAL.group],
          resources: [SESSION_APPROVAL.plural],
          verbs: ['create', 'get', 'list', 'watch'],
        },
      ],
    },
  });
  await rbac.createNamespacedRoleBinding({
    namespace,
    body: {
      metadata: { name: 'chaperone-agent' },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'chaperone-agent' },
      subjects: [{ kind: 'ServiceAccount', name: 'agent', namespace }],
    },
  });
  const token = await core.createNamespacedServiceAccountToken({
    name: 'agent',
    namespace,
    body: { spec: { audiences: [] } },
  });
  const agent = new KubeConfig();
  agent.loadFromClusterAndUser(
    {
      name: 'test',
      server: kube.server,
      caData: Buffer.from(kube.caPem).toString('base64'),
      skipTLSVerify: false,
    },
    { name: 'agent', token: token.status!.token },
  );
  return agent;
}

/** The reviewer's side of SessionApprovals in one namespace, acting as `admin`. */
export function reviewerIn(admin: KubeConfig, namespace: string) {
  const custom = admin.makeApiClient(CustomObjectsApi);
  const list = async () =>
    (
      (await custom.listNamespacedCustomObject({ ...APPROVAL_API, namespace })) as {
        items: ApprovalObject[];
      }
    ).items;
  return {
    list,
    /** The first SessionApproval nobody decided yet. */
    pending: async () => (await list()).find((a) => a.status?.decision === undefined),
    /** Writes a decision into the status, as a reviewer (or anyone with RBAC on the status) can. */
    decide: (name: string, decision: Record<string, unknown>) =>
      custom.patchNamespacedCustomObjectStatus(
        { ...APPROVAL_API, namespace, name, body: { status: { decision } } },
        setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
      ),
  };
}
