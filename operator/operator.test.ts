// The SessionPolicy controller against a real kube-apiserver and kube-controller-manager: children
// with ownerReferences, Ready conditions, drift repair, pruning, semantic refusal, garbage collection.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import {
  AdmissionregistrationV1Api,
  CoreV1Api,
  CustomObjectsApi,
  type KubeConfig,
  NetworkingV1Api,
  PatchStrategy,
  setHeaderOptions,
} from '@kubernetes/client-node';
import { sidecarConfigSchema } from '../sidecar/config/index.ts';
import { testEnv } from '../test/env/index.ts';
import { kubeConfigFor } from '../test/env/kube.ts';
import type { RunningOperator } from './operator.ts';
import { CONFIG_KEY, childName, LABELS } from './render/index.ts';
import {
  type OperatorUnderTest,
  POLICY_API,
  samplePolicy,
  startOperatorInNamespace,
  waitFor,
} from './testing/kube.ts';

interface PolicyStatus {
  observedGeneration?: number;
  conditions?: {
    type: string;
    status: string;
    reason: string;
    message: string;
    observedGeneration?: number;
  }[];
}
interface Policy {
  metadata: { name: string; uid: string; generation: number };
  status?: PolicyStatus;
}

// At top level: testEnv registers its teardown with after(), which inside a hook would run at once.
const env = await testEnv(['kube']);

const { group, version, plural } = POLICY_API;

describe('SessionPolicy controller', () => {
  let kc: KubeConfig;
  let core: CoreV1Api;
  let networking: NetworkingV1Api;
  let custom: CustomObjectsApi;
  let ns: string;
  let operator: RunningOperator | undefined;
  let fixture: OperatorUnderTest | undefined;

  const getPolicy = async (name: string) =>
    (await custom.getNamespacedCustomObject({ group, version, plural, namespace: ns, name })) as Policy;
  /** A new generation: the policy's first target listens on `port`. */
  const setListenPort = (port: number) =>
    custom.patchNamespacedCustomObject({
      group,
      version,
      plural,
      namespace: ns,
      name: 'alpha',
      body: [{ op: 'replace', path: '/spec/targets/0/listenPort', value: port }],
    });
  const ready = (policy: Policy) => policy.status?.conditions?.find((c) => c.type === 'Ready');
  const readConfig = async (name: string) => {
    const cm = await core.readNamespacedConfigMap({ name: childName(name), namespace: ns });
    return sidecarConfigSchema.parse(JSON.parse(cm.data?.[CONFIG_KEY] ?? '{}'));
  };

  before(async () => {
    kc = kubeConfigFor(env.kube);
    core = kc.makeApiClient(CoreV1Api);
    networking = kc.makeApiClient(NetworkingV1Api);
    custom = kc.makeApiClient(CustomObjectsApi);
    fixture = await startOperatorInNamespace(kc, 'policies');
    ({ namespace: ns, operator } = fixture);
  });

  after(() => fixture?.stop());

  it('renders ConfigMap and NetworkPolicy owned by the policy and reports Ready', async () => {
    await custom.createNamespacedCustomObject({
      group,
      version,
      plural,
      namespace: ns,
      body: samplePolicy('alpha', ns),
    });
    const policy = await waitFor('alpha Ready', async () => {
      const p = await getPolicy('alpha');
      return ready(p)?.status === 'True' ? p : undefined;
    });
    assert.equal(policy.status?.observedGeneration, 1);
    assert.equal(ready(policy)?.reason, 'Reconciled');
    assert.equal(ready(policy)?.observedGeneration, 1);

    const cm = await core.readNamespacedConfigMap({ name: 'chaperone-policy-alpha', namespace: ns });
    const np = await networking.readNamespacedNetworkPolicy({
      name: 'chaperone-policy-alpha',
      namespace: ns,
    });
    for (const child of [cm, np]) {
      assert.deepEqual(
        child.metadata?.ownerReferences?.map((o) => ({
          kind: o.kind,
          name: o.name,
          uid: o.uid,
          controller: o.controller,
          block: o.blockOwnerDeletion,
        })),
        [{ kind: 'SessionPolicy', name: 'alpha', uid: policy.metadata.uid, controller: true, block: true }],
      );
      assert.equal(child.metadata?.labels?.[LABELS.policy], 'alpha');
      assert.ok(
        child.metadata?.managedFields?.some(
          (f) => f.manager === 'chaperone-operator' && f.operation === 'Apply',
        ),
      );
    }
    const config = await readConfig('alpha');
    assert.deepEqual(config.policy, { name: 'alpha', namespace: ns, generation: 1 });
    assert.equal(config.targets[0]?.credentialsDir, '/var/run/chaperone/credentials/db');
    assert.deepEqual(np.spec?.podSelector?.matchLabels, { app: 'alpha' });
    assert.deepEqual(np.spec?.policyTypes, ['Egress']);

    const events = await core.listNamespacedEvent({
      namespace: ns,
      fieldSelector: 'involvedObject.name=alpha',
    });
    assert.ok(events.items.some((e) => e.reason === 'Reconciled' && e.type === 'Normal'));
  });

  it('follows edits of the policy (new generation in config and status)', async () => {
    await setListenPort(16432);
    await waitFor(
      'config with the new port',
      async () => (await readConfig('alpha')).targets[0]?.listenPort === 16432,
    );
    const config = await readConfig('alpha');
    assert.equal(config.policy.generation, 2);
    const policy = await waitFor('observedGeneration 2', async () => {
      const p = await getPolicy('alpha');
      return p.status?.observedGeneration === 2 ? p : undefined;
    });
    assert.equal(ready(policy)?.status, 'True');
    assert.equal(ready(policy)?.observedGeneration, 2);
  });

  it('recreates deleted children and repairs edited ones', async () => {
    const old = await core.readNamespacedConfigMap({ name: 'chaperone-policy-alpha', namespace: ns });
    await core.deleteNamespacedConfigMap({ name: 'chaperone-policy-alpha', namespace: ns });
    const recreated = await waitFor('ConfigMap recreated', async () => {
      const cm = await core.readNamespacedConfigMap({ name: 'chaperone-policy-alpha', namespace: ns });
      return cm.metadata?.uid !== old.metadata?.uid ? cm : undefined;
    });
    assert.ok(recreated.data?.[CONFIG_KEY]?.includes('16432'));

    const oldNp = await networking.readNamespacedNetworkPolicy({
      name: 'chaperone-policy-alpha',
      namespace: ns,
    });
    await networking.deleteNamespacedNetworkPolicy({ name: 'chaperone-policy-alpha', namespace: ns });
    await waitFor('NetworkPolicy recreated', async () => {
      const np = await networking.readNamespacedNetworkPolicy({
        name: 'chaperone-policy-alpha',
        namespace: ns,
      });
      return np.metadata?.uid !== oldNp.metadata?.uid;
    });

    await core.patchNamespacedConfigMap(
      {
        name: 'chaperone-policy-alpha',
        namespace: ns,
        body: { data: { [CONFIG_KEY]: '{"tampered":true}' } },
      },
      setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
    );
    await waitFor(
      'ConfigMap repaired',
      async () => (await readConfig('alpha')).targets[0]?.listenPort === 16432,
    );
  });

  it('keeps Ready through a failed apply while the children are current, and not for a new generation', async () => {
    const admission = kc.makeApiClient(AdmissionregistrationV1Api);
    const webhook = `chaperone-test-refuse-configmaps-${ns}`;
    const reconcileErrors = async () =>
      (
        await core.listNamespacedEvent({
          namespace: ns,
          fieldSelector: 'involvedObject.name=alpha,reason=ReconcileError',
        })
      ).items.length;
    const before = await reconcileErrors();
    // Every ConfigMap write in the namespace now fails, as when the operator's own children webhook
    // is down during its rollout: nothing listens on port 1.
    await admission.createValidatingWebhookConfiguration({
      body: {
        metadata: { name: webhook },
        webhooks: [
          {
            name: 'refuse.configmaps.chaperone.dev',
            admissionReviewVersions: ['v1'],
            sideEffects: 'None',
            failurePolicy: 'Fail',
            timeoutSeconds: 2,
            clientConfig: { url: 'https://127.0.0.1:1/refuse' },
            namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': ns } },
            rules: [
              {
                apiGroups: [''],
                apiVersions: ['v1'],
                operations: ['CREATE', 'UPDATE'],
                resources: ['configmaps'],
              },
            ],
          },
        ],
      },
    });
    try {
      // Same generation (an annotation): the apply fails, the children are what it would write.
      await custom.patchNamespacedCustomObject(
        {
          group,
          version,
          plural,
          namespace: ns,
          name: 'alpha',
          body: { metadata: { annotations: { 'test.chaperone.dev/nudge': '1' } } },
        },
        setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
      );
      await waitFor('a failed reconcile', async () => (await reconcileErrors()) > before);
      const kept = await getPolicy('alpha');
      assert.equal(ready(kept)?.status, 'True', JSON.stringify(kept.status));
      assert.equal(kept.status?.observedGeneration, kept.metadata.generation);

      // A new generation the operator cannot write: its pods would get a config that is not in place.
      await setListenPort(16433);
      const refused = await waitFor('Ready False for the new generation', async () => {
        const p = await getPolicy('alpha');
        return ready(p)?.status === 'False' ? p : undefined;
      });
      assert.equal(ready(refused)?.reason, 'ReconcileError');
      assert.match(ready(refused)?.message ?? '', /refuse\.configmaps\.chaperone\.dev/);
    } finally {
      await admission.deleteValidatingWebhookConfiguration({ name: webhook });
    }
    // Retried once the writes go through again.
    const back = await waitFor('Ready again, at the new generation', async () => {
      const p = await getPolicy('alpha');
      return ready(p)?.status === 'True' && p.status?.observedGeneration === p.metadata.generation
        ? p
        : undefined;
    });
    assert.equal((await readConfig('alpha')).targets[0]?.listenPort, 16433);
    assert.equal(ready(back)?.reason, 'Reconciled');
  });

  it('prunes children labelled as ours that no policy renders', async () => {
    const labels = { [LABELS.managedBy]: 'chaperone-operator', [LABELS.policy]: 'alpha' };
    // A leftover of the same policy under an old name, and one of a policy that no longer exists.
    await core.createNamespacedConfigMap({
      namespace: ns,
      body: { metadata: { name: 'chaperone-policy-alpha-old', labels } },
    });
    await core.createNamespacedConfigMap({
      namespace: ns,
      body: { metadata: { name: 'chaperone-policy-gone', labels: { ...labels, [LABELS.policy]: 'gone' } } },
    });
    await waitFor('leftovers pruned', async () => {
      const list = await core.listNamespacedConfigMap({
        namespace: ns,
        labelSelector: `${LABELS.managedBy}=chaperone-operator`,
      });
      const names = list.items.map((i) => i.metadata?.name).sort();
      return JSON.stringify(names) === JSON.stringify(['chaperone-policy-alpha']);
    });
  });

  it('refuses a policy whose Secret is missing, with a reason, until the Secret exists', async () => {
    const body = samplePolicy('beta', ns, {
      recording: { store: { url: 'file:///var/lib/chaperone' }, signingKeySecret: { name: 'missing-key' } },
    });
    await custom.createNamespacedCustomObject({ group, version, plural, namespace: ns, body });
    const condition = await waitFor('beta refused', async () => {
      const c = ready(await getPolicy('beta'));
      return c?.status === 'False' ? c : undefined;
    });
    assert.equal(condition.reason, 'SecretNotFound');
    assert.match(condition.message, /Secret "missing-key" \(recording\.signingKeySecret\) not found/);
    await assert.rejects(
      core.readNamespacedConfigMap({ name: 'chaperone-policy-beta', namespace: ns }),
      (e: { code?: number }) => e.code === 404,
    );
    const events = await core.listNamespacedEvent({
      namespace: ns,
      fieldSelector: 'involvedObject.name=beta',
    });
    assert.ok(events.items.some((e) => e.reason === 'SecretNotFound' && e.type === 'Warning'));

    await core.createNamespacedSecret({
      namespace: ns,
      body: { metadata: { name: 'missing-key' }, stringData: { privateKey: 'x' } },
    });
    await waitFor(
      'beta Ready once the Secret exists',
      async () => ready(await getPolicy('beta'))?.status === 'True',
    );
  });

  it('exposes metrics and readiness', async () => {
    const metrics = await (await fetch(`${operator!.url}/metrics`)).text();
    assert.match(
      metrics,
      /chaperone_operator_reconcile_total\{controller="sessionpolicy",result="success"\} [1-9]/,
    );
    assert.match(metrics, /chaperone_operator_queue_depth\{controller="sessionpolicy"\} 0/);
    assert.equal((await fetch(`${operator!.url}/readyz`)).status, 200);
    assert.equal((await fetch(`${operator!.url}/healthz`)).status, 200);
  });

  it('leaves garbage collection of the children to kube-controller-manager', async () => {
    // Stop the operator first so only the garbage collector can remove them.
    await fixture!.stopOperator();
    await custom.deleteNamespacedCustomObject({ group, version, plural, namespace: ns, name: 'alpha' });
    await waitFor(
      'children garbage-collected',
      async () => {
        const cms = await core.listNamespacedConfigMap({
          namespace: ns,
          labelSelector: `${LABELS.policy}=alpha`,
        });
        const nps = await networking.listNamespacedNetworkPolicy({
          namespace: ns,
          labelSelector: `${LABELS.policy}=alpha`,
        });
        return cms.items.length === 0 && nps.items.length === 0;
      },
      { timeoutMs: 60_000 },
    );
  });
});
