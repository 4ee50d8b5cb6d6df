// What of the injected pod costs the apiserver: the pod as chaperone injects it is posted with no
// webhook registered, whole and with one part taken out at a time (still a valid pod), at 10
// creates in flight; kube-apiserver's process CPU per create for each. The parts overlap, so the
// savings do not add up.
//   N=300 node bench/webhook-pod-size.bench.ts

import type { V1Pod } from '@kubernetes/client-node';
import { startEnv } from '../test/env/index.ts';
import { WebhookHarness } from '../webhook/testing/harness.ts';
import { podCreator } from './testing/pod-creator.ts';
import { pidOnPort, totalCpuSeconds } from './testing/process-stats.ts';
import { agentPod, benchPolicySpec } from './testing/webhook-pods.ts';

const env = await startEnv(['kube']);
const h = new WebhookHarness(env.info.kube!);
try {
  await h.start({ logLevel: 'error' }, true);
  const apiPid = (await pidOnPort(Number(new URL(env.info.kube!.server).port)))!;
  const ns = await h.recordedNamespace('bench');
  await h.createPolicy(ns, 'bench', benchPolicySpec);
  await h.registerConfigurations(h.ca.certPem);
  const dryRun = () => h.core.createNamespacedPod({ namespace: ns, body: agentPod('t'), dryRun: 'All' });
  const injected = (p: V1Pod) => p.spec?.initContainers?.some((c) => c.name === 'chaperone') ?? false;
  let tpl = await dryRun();
  for (let i = 0; i < 300 && !injected(tpl); i++) {
    await new Promise((r) => setTimeout(r, 100));
    tpl = await dryRun();
  }
  if (!injected(tpl)) throw new Error('the webhook did not inject within 30 s');
  await h.deleteConfigurations();
  // Until the apiserver stops calling the webhook (its configuration informer lags).
  for (let i = 0; i < 300 && injected(await dryRun()); i++) await new Promise((r) => setTimeout(r, 100));
  const base = (): V1Pod => {
    const { metadata, spec } = structuredClone(tpl);
    return {
      metadata: { labels: metadata?.labels ?? {}, annotations: metadata?.annotations ?? {} },
      spec: spec!,
    };
  };
  const ours = (p: V1Pod) => p.spec!.initContainers!.filter((c) => c.name.startsWith('chaperone'));
  const variants: Record<string, () => V1Pod> = {
    plain: () => agentPod('x'),
    injected: base,
    'no capture env on chaperone-init': () => {
      const p = base();
      for (const e of ours(p)[0]!.env!) e.value = '';
      return p;
    },
    'no probes, no securityContexts on ours': () => {
      const p = base();
      for (const c of ours(p)) {
        delete c.startupProbe;
        delete c.livenessProbe;
        delete c.securityContext;
      }
      return p;
    },
    'no chaperone volumes and mounts': () => {
      const p = base();
      for (const c of [...p.spec!.initContainers!, ...p.spec!.containers]) delete c.volumeMounts;
      p.spec!.volumes = p.spec!.volumes!.filter((v) => !v.name.startsWith('chaperone'));
      if (p.spec!.volumes.length === 0) delete p.spec!.volumes;
      return p;
    },
    'no annotations': () => {
      const p = base();
      p.metadata!.annotations = {};
      return p;
    },
    'agent env, mounts untouched; ours bare (name, image)': () => {
      const p = agentPod('x');
      p.spec!.initContainers = ours(base()).map(
        (c) =>
          ({
            name: c.name,
            image: c.image,
            ...(c.restartPolicy ? { restartPolicy: c.restartPolicy } : {}),
          }) as never,
      );
      return p;
    },
  };
  let seq = 0;
  const N = Number(process.env.N ?? 300);
  for (const [name, make] of Object.entries(variants)) {
    const client = await podCreator(h.kc, h.kube.server, 10);
    const create = async (body: V1Pod) => {
      body.metadata!.name = `v-${seq++}`;
      await client.create(ns, body);
    };
    const run = async (n: number) => {
      let next = 0;
      await Promise.all(
        Array.from({ length: 10 }, async () => {
          while (next++ < n) await create(make());
        }),
      );
    };
    await run(50);
    const c0 = await totalCpuSeconds(apiPid);
    const t0 = performance.now();
    await run(N);
    const cpu = ((await totalCpuSeconds(apiPid)) - c0) / N;
    const rate = N / ((performance.now() - t0) / 1000);
    process.stdout.write(
      `${name}: apiserver ${(cpu * 1000).toFixed(2)} ms CPU/pod, ${rate.toFixed(0)} pods/s, body ${JSON.stringify(make()).length} B\n`,
    );
    client.close();
    await h.core.deleteCollectionNamespacedPod({ namespace: ns });
  }
} finally {
  await h.cleanup().catch(() => {});
  await env.stop();
}
