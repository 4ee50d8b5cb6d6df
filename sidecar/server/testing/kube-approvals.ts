// The sidecar with approvals.backend kubernetes, for the sidecar's end-to-end approval tests: a
// sidecar (in this process) in front of the real PostgreSQL whose rule approve-truncate (TRUNCATE)
// requires approval, its SessionApprovals in a fresh namespace of the real apiserver made under the
// agent service account's RBAC (reached through KUBECONFIG, as outside a cluster), and the reviewer's
// side acting as the cluster admin.
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before } from 'node:test';
import { CoreV1Api } from '@kubernetes/client-node';
import type { KubeInfo, PostgresInfo } from '../../../test/env/index.ts';
import { kubeConfigFor } from '../../../test/env/kube.ts';
import type { SidecarConfigInput } from '../../config/index.ts';
import { approvalNamespaceWithAgent, reviewerIn } from '../../kubernetes-approvals/testing/approvals.ts';
import { type Harness, startHarness } from '../../postgres/testing/harness.ts';

export interface KubeApprovalsSidecarOptions {
  /** Start of the namespace's name (a random suffix follows) and of the temporary directory's. */
  name: string;
  /** approvals settings besides the backend (timeoutSeconds, reviewers). */
  approvals: Omit<NonNullable<SidecarConfigInput['approvals']>, 'backend'>;
  /** More sidecar config, computed when the sidecar starts: after the before hooks declared earlier. */
  config?: () => Partial<SidecarConfigInput>;
}

/**
 * Declares the before/after hooks that start and remove it (call it inside a describe); `harness()`
 * is the running sidecar's harness once the tests run.
 */
export function kubeApprovalsSidecar(
  env: { kube: KubeInfo; postgres: PostgresInfo },
  options: KubeApprovalsSidecarOptions,
) {
  const admin = kubeConfigFor(env.kube);
  const core = admin.makeApiClient(CoreV1Api);
  const namespace = `${options.name}-${randomBytes(3).toString('hex')}`;
  let dir: string | undefined;
  let h: Harness | undefined;

  before(async () => {
    const agentConfig = await approvalNamespaceWithAgent(admin, env.kube, namespace);
    dir = await mkdtemp(join(tmpdir(), `chaperone-${options.name}-`));
    const kubeconfig = join(dir, 'kubeconfig');
    await writeFile(kubeconfig, agentConfig.exportConfig(), { mode: 0o600 });
    h = await startHarness(env.postgres, {
      config: {
        guardrails: [
          { name: 'approve-truncate', match: { sqlClasses: ['truncate'] }, action: 'requireApproval' },
        ],
        approvals: { backend: 'kubernetes', ...options.approvals },
        ...options.config?.(),
      },
      sidecar: {
        pod: { serviceAccount: 'agent', pod: 'agent-0', namespace, node: 'node-1', podUid: 'uid-1' },
        env: { KUBECONFIG: kubeconfig },
      },
    });
  });

  after(async () => {
    await h?.close();
    await core.deleteNamespace({ name: namespace }).catch(() => undefined);
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  return {
    namespace,
    reviewer: reviewerIn(admin, namespace),
    harness: (): Harness => {
      if (!h) throw new Error('the sidecar has not started (use harness() inside a test)');
      return h;
    },
  };
}
