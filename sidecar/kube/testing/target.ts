// The Kubernetes target against the test environment's apiserver, shared by the gateway tests: a
// namespace of the test's own, the service account the sidecar acts as upstream (edit rights in the
// namespace), the agent's service-account token for audience `chaperone`, and sidecars
// (sidecar/http/testing/harness.ts) that write the agent's kubeconfig, as in a pod.
import assert from 'node:assert/strict';
import { mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CoreV1Api, RbacAuthorizationV1Api } from '@kubernetes/client-node';
import type { KubeInfo } from '../../../test/env/index.ts';
import { kubeConfigFor } from '../../../test/env/kube.ts';
import { until } from '../../../test/testing/until.ts';
import type { SidecarConfigInput } from '../../config/index.ts';
import { type HttpHarness, startHttpHarness } from '../../http/testing/harness.ts';

type KubeTargetConfig = SidecarConfigInput['targets'][number]['kubernetes'];

export interface KubeSidecarOptions {
  /** Where the sidecar writes the agent's kubeconfig (default: the target's `kubeconfig`). */
  kubeconfig?: string;
  /** The token it acts with upstream (default: the `chaperone-upstream` service account's). */
  upstreamToken?: string;
  kubernetes?: KubeTargetConfig;
  guardrails?: SidecarConfigInput['guardrails'];
}

export interface KubeTarget {
  namespace: string;
  /** This test's files: the agent's token (`agent-token`), the apiserver's CA (`ca.crt`). */
  dir: string;
  /** The agent's kubeconfig, written by the first sidecar. */
  kubeconfig: string;
  core: CoreV1Api;
  rbac: RbacAuthorizationV1Api;
  /** A token of service account `name` of the namespace (created if need be), valid for an hour. */
  serviceAccountToken(name: string, audience?: string): Promise<string>;
  /** Binds `role` (a ClusterRole, or a Role of the namespace) to service account `serviceAccount`. */
  bindRole(
    binding: string,
    role: { kind: 'ClusterRole' | 'Role'; name: string },
    serviceAccount: string,
  ): Promise<void>;
  /** A sidecar with the Kubernetes target, once it has written the agent's kubeconfig. */
  startSidecar(options?: KubeSidecarOptions): Promise<HttpHarness>;
  /** Stops every sidecar started, deletes the namespace and the files. */
  close(): Promise<void>;
}

/**
 * Creates `namespace` with the upstream service account and the agent's token. `forPods`: also
 * waits for the namespace's default ServiceAccount (kube-controller-manager makes it), without
 * which pods are not admitted.
 */
export async function startKubeTarget(
  kube: KubeInfo,
  namespace: string,
  options: { forPods?: boolean } = {},
): Promise<KubeTarget> {
  const kc = kubeConfigFor(kube);
  const core = kc.makeApiClient(CoreV1Api);
  const rbac = kc.makeApiClient(RbacAuthorizationV1Api);
  const dir = await mkdtemp(join(tmpdir(), `chaperone-${namespace}-`));
  const sidecars: HttpHarness[] = [];
  const close = async () => {
    for (const sidecar of sidecars) await sidecar.close();
    await core.deleteNamespace({ name: namespace }).catch(() => undefined);
    await rm(dir, { recursive: true, force: true });
  };
  const serviceAccountToken = async (name: string, audience?: string) => {
    await core
      .createNamespacedServiceAccount({ namespace, body: { metadata: { name } } })
      .catch(() => undefined);
    const r = await core.createNamespacedServiceAccountToken({
      name,
      namespace,
      body: { spec: { ...(audience ? { audiences: [audience] } : {}), expirationSeconds: 3600 } },
    });
    return r.status?.token ?? assert.fail('TokenRequest returned no token');
  };
  const bindRole: KubeTarget['bindRole'] = async (binding, role, serviceAccount) => {
    await rbac.createNamespacedRoleBinding({
      namespace,
      body: {
        metadata: { name: binding },
        roleRef: { apiGroup: 'rbac.authorization.k8s.io', ...role },
        subjects: [{ kind: 'ServiceAccount', name: serviceAccount, namespace }],
      },
    });
  };
  try {
    await core.createNamespace({ body: { metadata: { name: namespace } } });
    if (options.forPods) {
      await until(
        'the default ServiceAccount',
        () => core.readNamespacedServiceAccount({ name: 'default', namespace }),
        { timeoutMs: 60_000, intervalMs: 100 },
      );
    }
    // The sidecar's own identity upstream: a service account with edit rights in the namespace.
    const upstreamToken = await serviceAccountToken('chaperone-upstream');
    await bindRole('chaperone-upstream-edit', { kind: 'ClusterRole', name: 'edit' }, 'chaperone-upstream');
    const tokenFile = join(dir, 'agent-token');
    await writeFile(tokenFile, await serviceAccountToken('agent', 'chaperone'));
    const caFile = join(dir, 'ca.crt');
    await writeFile(caFile, kube.caPem);
    const kubeconfig = join(dir, 'kube', 'config');
    const url = new URL(kube.server);

    const startSidecar = async (o: KubeSidecarOptions = {}) => {
      const file = o.kubeconfig ?? kubeconfig;
      const sidecar = await startHttpHarness({
        target: {
          name: 'kube',
          protocol: 'kubernetes',
          upstream: { host: url.hostname, port: Number(url.port) },
          tls: { caFile },
          ...(o.kubernetes ? { kubernetes: o.kubernetes } : {}),
          agentKubeconfig: { file, tokenFile, namespace },
        },
        credentials: { token: o.upstreamToken ?? upstreamToken },
        issuers: [{ issuer: kube.serviceAccountIssuer, audiences: ['chaperone'], kubernetes: true, caFile }],
        pod: { serviceAccount: 'agent', namespace },
        ...(o.guardrails ? { config: { guardrails: o.guardrails } } : {}),
      });
      sidecars.push(sidecar);
      // The sidecar writes the agent's kubeconfig (its serving CA inside) once it listens.
      await until('the sidecar to write the agent kubeconfig', () => stat(file), {
        timeoutMs: 10_000,
        intervalMs: 50,
      });
      return sidecar;
    };
    return { namespace, dir, kubeconfig, core, rbac, serviceAccountToken, bindRole, startSidecar, close };
  } catch (error) {
    await close();
    throw error;
  }
}
