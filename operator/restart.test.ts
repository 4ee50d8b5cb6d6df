// The apiserver goes away mid-run (graceful stop and crash): the operator's informers, which
// client-node would leave stopped, restart with a fresh list, and changes made after the restart
// are reconciled without duplicating anything. Runs its own control plane: restarting the shared
// one would disturb other test files.
import assert from 'node:assert/strict';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { CoreV1Api, CustomObjectsApi, type KubeConfig, NetworkingV1Api } from '@kubernetes/client-node';
import { sidecarConfigSchema } from '../sidecar/config/index.ts';
import { type KubeControlPlane, kubeConfigFor, startKubeControlPlane } from '../test/env/kube.ts';
import type { RunningOperator } from './operator.ts';
import { CHILD_SELECTOR, CONFIG_KEY, childName } from './render/index.ts';
import { POLICY_API, samplePolicy, startOperatorInNamespace, waitFor } from './testing/kube.ts';

const { group, version, plural } = POLICY_API;

interface Policy {
  metadata: { uid: string; generation: number };
  status?: { observedGeneration?: number; conditions?: { type: string; status: string }[] };
}

describe('operator across apiserver restarts', { timeout: 240_000 }, () => {
  let plane: KubeControlPlane;
  let kc: KubeConfig;
  let core: CoreV1Api;
  let networking: NetworkingV1Api;
  let custom: CustomObjectsApi;
  let ns: string;
  let operator: RunningOperator;

  const getPolicy = async (name: string) =>
    (await custom.getNamespacedCustomObject({ group, version, plural, namespace: ns, name })) as Policy;
  const isReady = (p: Policy) =>
    p.status?.observedGeneration === p.metadata.generation &&
    p.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True');
  const listenPort = async (name: string) => {
    const cm = await core.readNamespacedConfigMap({ name: childName(name), namespace: ns });
    return sidecarConfigSchema.parse(JSON.parse(cm.data?.[CONFIG_KEY] ?? '{}')).targets[0]?.listenPort;
  };
  const restarts = async () => {
    const text = await (await fetch(`${operator.url}/metrics`)).text();
    return [
      ...text.matchAll(/chaperone_operator_informer_restarts_total\{informer="sessionpolicies"\} (\d+)/g),
    ].reduce((n, m) => n + Number(m[1]), 0);
  };

  before(async () => {
    plane = await startKubeControlPlane(await mkdtemp(join(tmpdir(), 'chaperone-restart-')));
    kc = kubeConfigFor(plane.info);
    core = kc.makeApiClient(CoreV1Api);
    networking = kc.makeApiClient(NetworkingV1Api);
    custom = kc.makeApiClient(CustomObjectsApi);
    ({ namespace: ns, operator } = await startOperatorInNamespace(kc, 'restart'));
    await custom.createNamespacedCustomObject({
      group,
      version,
      plural,
      namespace: ns,
      body: samplePolicy('one', ns),
    });
    await waitFor('policy one Ready', async () => isReady(await getPolicy('one')));
  });

  after(async () => {
    await operator?.stop();
    await plane?.stop();
  });

  for (const [kind, signal] of [
    ['graceful stop', 'SIGTERM'],
    ['crash', 'SIGKILL'],
  ] as const) {
    it(`recovers after a ${kind} of the apiserver and reconciles later changes`, async () => {
      const before = await restarts();
      await plane.restartApiserver({ signal });
      const port = (await listenPort('one'))! + 1;
      await waitFor('edit accepted by the restarted apiserver', async () => {
        await custom.patchNamespacedCustomObject({
          group,
          version,
          plural,
          namespace: ns,
          name: 'one',
          body: [{ op: 'replace', path: '/spec/targets/0/listenPort', value: port }],
        });
        return true;
      });
      const newPolicy = `after-${signal.toLowerCase()}`;
      await custom.createNamespacedCustomObject({
        group,
        version,
        plural,
        namespace: ns,
        body: samplePolicy(newPolicy, ns),
      });

      await waitFor('edit reconciled', async () => (await listenPort('one')) === port, { timeoutMs: 60_000 });
      await waitFor('new policy Ready', async () => isReady(await getPolicy(newPolicy)), {
        timeoutMs: 60_000,
      });
      await waitFor('policy one Ready at its new generation', async () => isReady(await getPolicy('one')));
      assert.ok((await restarts()) > before, 'the policy informer restarted');
    });
  }

  it('duplicated nothing', async () => {
    const policies = ['after-sigkill', 'after-sigterm', 'one'];
    const cms = await core.listNamespacedConfigMap({ namespace: ns, labelSelector: CHILD_SELECTOR });
    const nps = await networking.listNamespacedNetworkPolicy({
      namespace: ns,
      labelSelector: CHILD_SELECTOR,
    });
    const expected = policies.map(childName);
    assert.deepEqual(cms.items.map((i) => i.metadata?.name).sort(), expected);
    assert.deepEqual(nps.items.map((i) => i.metadata?.name).sort(), expected);
    for (const child of [...cms.items, ...nps.items])
      assert.equal(child.metadata?.ownerReferences?.length, 1);
    for (const name of policies) {
      const policy = await getPolicy(name);
      assert.equal(policy.status?.conditions?.length, 1);
    }
    assert.equal((await fetch(`${operator.url}/readyz`)).status, 200);
  });
});
