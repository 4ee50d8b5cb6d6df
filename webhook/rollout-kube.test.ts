// A rollout in a real kube-apiserver: the mutating webhook served by replica A, the validating one
// by replica B whose config renders other sidecar resources (what a `helm upgrade` does for a
// while). B admits what A rendered, through the renderer registry A published in the system
// namespace; a later mutating webhook that tampers with the pod, or names a rendering nobody
// published, is still refused.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { stringify } from 'yaml';
import { testEnv } from '../test/env/index.ts';
import { parseWebhookConfig } from './config.ts';
import { ANNOTATIONS, CONTAINERS, RENDERER_REGISTRY, WEBHOOK_PATHS } from './constants.ts';
import { type RunningWebhook, startWebhook } from './main.ts';
import { rendererConfigMapName } from './renderer-registry.ts';
import { renderingHash, renderingOf } from './rendering.ts';
import { agentPod, ordersPolicySpec } from './testing/fixtures.ts';
import { RUN_LABEL, WebhookHarness } from './testing/harness.ts';
import { type LateWebhook, startLateWebhook } from './testing/late-webhook.ts';
import { refusalOf } from './testing/refusal.ts';
import { renderWebhookConfigurations } from './webhook-configurations.ts';

const { kube } = await testEnv(['kube']);
const h = new WebhookHarness(kube);

/** Validating admissions replica B answered so far (its own metrics). */
async function validationsOf(webhook: RunningWebhook): Promise<number> {
  const text = await webhook.server.registry.getSingleMetricAsString(
    'chaperone_webhook_admission_duration_seconds',
  );
  let sum = 0;
  for (const line of text.split('\n')) {
    if (line.includes('_count{') && line.includes(`path="${WEBHOOK_PATHS.validatePods}"`))
      sum += Number(line.split(' ').at(-1));
  }
  return sum;
}

describe('a rollout: mutating on replica A, validating on replica B with other sidecar resources', () => {
  let b: RunningWebhook;
  let ns: string;
  let hashA: string;
  let hashB: string;
  let late: LateWebhook | undefined;

  before(async () => {
    await h.start();
    hashA = renderingHash(renderingOf(h.config, h.config.dns.resolvers));
    const configB = parseWebhookConfig({
      ...h.config,
      listen: { host: '127.0.0.1', port: 0 },
      resources: { ...h.config.resources, sidecar: { requests: { cpu: '60m' }, limits: { memory: '1Gi' } } },
    });
    hashB = renderingHash(renderingOf(configB, configB.dns.resolvers));
    b = await startWebhook(configB, h.kc);
    const { validating } = renderWebhookConfigurations({
      client: { mode: 'url', baseUrl: b.url },
      caBundle: h.ca.certPem,
      systemNamespace: h.systemNamespace,
      name: h.configName,
      extraNamespaceLabels: { [RUN_LABEL]: h.id },
    });
    await h.mustKubectl(['apply', '-f', '-'], stringify(validating));
    ns = await h.recordedNamespace('rollout');
    await h.createPolicy(ns, 'orders', ordersPolicySpec());
    // The apiserver picks the new validating configuration up asynchronously: wait until B answers.
    const deadline = Date.now() + 30_000;
    for (let i = 0; ; i++) {
      const before = await validationsOf(b);
      await refusalOf(
        h.core.createNamespacedPod({ namespace: ns, body: agentPod(`probe-${i}`), dryRun: 'All' }),
      );
      if ((await validationsOf(b)) > before) break;
      if (Date.now() > deadline) throw new Error('replica B never validated a pod in 30 s');
      await new Promise((r) => setTimeout(r, 200));
    }
  });

  after(async () => {
    await late?.close();
    await h.cleanup();
    await b?.stop();
  });

  it('both replicas published their rendering in the system namespace before serving', async () => {
    assert.notEqual(hashA, hashB);
    const list = await h.core.listNamespacedConfigMap({
      namespace: h.systemNamespace,
      labelSelector: `${RENDERER_REGISTRY.label.key}=${RENDERER_REGISTRY.label.value}`,
    });
    const names = list.items.map((cm) => cm.metadata?.name).sort();
    assert.deepEqual(names, [rendererConfigMapName(hashA), rendererConfigMapName(hashB)].sort());
    const a = list.items.find((cm) => cm.metadata?.name === rendererConfigMapName(hashA))!;
    assert.ok(Date.now() - Date.parse(a.metadata!.annotations![RENDERER_REGISTRY.seenAnnotation]!) < 120_000);
  });

  it('B admits the pod A rendered, with A sidecar resources, after validating it itself', async () => {
    const before = await validationsOf(b);
    const pod = await h.createPod(ns, agentPod('agent-a'));
    assert.ok((await validationsOf(b)) > before, 'validated by B');
    assert.equal(pod.metadata?.annotations?.[ANNOTATIONS.renderedWith], hashA);
    const sidecar = pod.spec!.initContainers!.find((c) => c.name === CONTAINERS.sidecar)!;
    assert.equal(sidecar.resources?.limits?.memory, '512Mi');
  });

  describe('a later mutating webhook that changes the pod after injection', () => {
    before(async () => {
      // Called after ours (configurations run in name order) and again after our reinvocation
      // (IfNeeded), so its change is in the final object.
      late = await startLateWebhook(h, {
        name: 'tamper',
        objectSelector: { matchExpressions: [{ key: 'tamper', operator: 'Exists' }] },
        reinvocationPolicy: 'IfNeeded',
        patch: (pod) => {
          const index = (pod.spec?.initContainers ?? []).findIndex((c) => c.name === CONTAINERS.sidecar);
          const tamper = pod.metadata?.labels?.tamper;
          const key = ANNOTATIONS.renderedWith.replace('/', '~1');
          return index < 0
            ? []
            : tamper === 'image'
              ? [
                  {
                    op: 'replace',
                    path: `/spec/initContainers/${index}/image`,
                    value: 'evil.example/chaperone:1',
                  },
                ]
              : [{ op: 'replace', path: `/metadata/annotations/${key}`, value: 'ffffffffffffffff' }];
        },
      });
    });

    /** Creates tampered pods until the tamper webhook is active (the apiserver picks it up asynchronously). */
    async function tamperedRefusal(kind: string): Promise<string> {
      const deadline = Date.now() + 30_000;
      for (let i = 0; ; i++) {
        const refused = await refusalOf(
          h.createPod(
            ns,
            agentPod(`tamper-${kind}-${i}`, (p) => Object.assign(p.metadata!.labels!, { tamper: kind })),
          ),
        );
        if (refused) return `${refused.code} ${refused.message}`;
        if (Date.now() > deadline) assert.fail(`tampered pods (${kind}) kept being admitted for 30 s`);
        await new Promise((r) => setTimeout(r, 200));
      }
    }

    it('a changed sidecar image under A hash is refused: A rendering differs too', async () => {
      const message = await tamperedRefusal('image');
      assert.match(message, /differs from chaperone's injection/);
      assert.match(
        message,
        new RegExp(
          `rendered with ${hashA}, this replica renders with ${hashB}, which renders it differently too`,
        ),
      );
    });

    it('a hash nobody published is refused, naming both hashes', async () => {
      const message = await tamperedRefusal('hash');
      assert.match(
        message,
        new RegExp(
          `rendered with ffffffffffffffff, this replica renders with ${hashB}: no such rendering is published`,
        ),
      );
    });
  });
});
