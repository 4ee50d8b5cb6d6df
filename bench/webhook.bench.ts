// Admission webhook latency under 50 concurrent pod creates, as the apiserver itself measures it
// (apiserver_admission_webhook_admission_duration_seconds, the time the apiserver waits for our
// webhook, TLS and network included). Starts its own kube env and webhook process.
//   node bench/webhook.bench.ts [--pods 1000] [--concurrency 50] [--write]
// --write replaces the "## Admission webhook" section of docs/benchmarks.md.
import { readFile, writeFile } from 'node:fs/promises';
import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import type { V1Pod } from '@kubernetes/client-node';
import { startEnv } from '../test/env/index.ts';
import { WebhookHarness } from '../webhook/testing/harness.ts';

const { values } = parseArgs({
  options: {
    pods: { type: 'string', default: '1000' },
    concurrency: { type: 'string', default: '50' },
    write: { type: 'boolean', default: false },
  },
});
const totalPods = Number(values.pods);
const concurrency = Number(values.concurrency);
const METRIC = 'apiserver_admission_webhook_admission_duration_seconds';

type Buckets = Map<number, number>;

/** Cumulative bucket counts per webhook type (admit = mutating, validating) for our pod webhook. */
function scrape(text: string, webhook: string): Record<string, Buckets> {
  const out: Record<string, Buckets> = {};
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${METRIC}_bucket{`)) continue;
    const labels = Object.fromEntries([...line.matchAll(/(\w+)="([^"]*)"/g)].map((m) => [m[1], m[2]]));
    if (labels.name !== webhook || labels.operation !== 'CREATE') continue;
    const le = labels.le === '+Inf' ? Number.POSITIVE_INFINITY : Number(labels.le);
    const type = labels.type ?? '';
    out[type] ??= new Map();
    const buckets = out[type];
    buckets.set(le, (buckets.get(le) ?? 0) + Number(line.slice(line.lastIndexOf(' ') + 1)));
  }
  return out;
}

function delta(after: Buckets, before: Buckets | undefined): Buckets {
  return new Map([...after].map(([le, n]) => [le, n - (before?.get(le) ?? 0)]));
}

/** histogram_quantile: linear interpolation inside the bucket holding the q-th observation. */
function quantile(q: number, buckets: Buckets): number {
  const sorted = [...buckets].sort(([a], [b]) => a - b);
  const total = sorted.at(-1)![1];
  const rank = q * total;
  let lower = 0;
  let below = 0;
  for (const [le, count] of sorted) {
    if (count >= rank) {
      if (le === Number.POSITIVE_INFINITY) return lower;
      return lower + ((le - lower) * (rank - below)) / Math.max(count - below, 1);
    }
    lower = le;
    below = count;
  }
  return lower;
}

/** Same from our own (finer-bucketed) histogram, for comparison. */
function ownQuantiles(
  text: string,
  metric: string,
  path: string,
): { p50: number; p99: number; count: number } {
  const buckets: Buckets = new Map();
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${metric}_bucket{`)) continue;
    if (!line.includes(`path="${path}"`)) continue;
    const le = /le="([^"]+)"/.exec(line)![1]!;
    const key = le === '+Inf' ? Number.POSITIVE_INFINITY : Number(le);
    buckets.set(key, (buckets.get(key) ?? 0) + Number(line.slice(line.lastIndexOf(' ') + 1)));
  }
  return {
    p50: quantile(0.5, buckets),
    p99: quantile(0.99, buckets),
    count: [...buckets.values()].reduce((a, b) => Math.max(a, b), 0),
  };
}

const ms = (s: number) => `${(s * 1000).toFixed(1)} ms`;

const env = await startEnv(['kube']);
const h = new WebhookHarness(env.info.kube!);
try {
  // The webhook in its own process, as deployed: its event loop is not shared with this client.
  await h.start({ logLevel: 'error' }, true);
  const ns = await h.recordedNamespace('bench');
  await h.createPolicy(ns, 'bench', {
    podSelector: {},
    targets: [
      {
        name: 'db',
        protocol: 'postgres',
        upstream: { host: '10.0.0.50', port: 5432 },
        listenPort: 15432,
        transparent: true,
      },
      {
        name: 'bastion',
        protocol: 'ssh',
        upstream: { host: 'bastion.example', port: 22 },
        listenPort: 15022,
      },
    ],
    recording: { store: { url: 's3://recordings/bench' }, signingKeySecret: { name: 'signing-key' } },
  });
  const pod = (name: string): V1Pod => ({
    metadata: { name, labels: { app: 'agent' } },
    spec: {
      securityContext: { runAsUser: 1000 },
      containers: [{ name: 'agent', image: 'registry.example/agent:1' }],
    },
  });
  await h.waitUntilActive(ns, pod('probe'));
  for (let i = 0; i < 20; i++) await h.createPod(ns, pod(`warmup-${i}`));

  const metrics = () => h.mustKubectl(['get', '--raw', '/metrics']);
  const before = scrape(await metrics(), 'pods.chaperone.dev');
  let next = 0;
  const clientLatencies: number[] = [];
  const started = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < totalPods) {
        const i = next++;
        const t0 = performance.now();
        const created = await h.createPod(ns, pod(`bench-${i}`));
        clientLatencies.push(performance.now() - t0);
        if (!created.spec?.initContainers?.some((c) => c.name === 'chaperone'))
          throw new Error(`pod bench-${i} not injected`);
      }
    }),
  );
  const seconds = (performance.now() - started) / 1000;
  const after = scrape(await metrics(), 'pods.chaperone.dev');
  const own = await h.webhookGet('/metrics');

  const rows: string[] = [];
  for (const [type, label] of [
    ['admit', 'mutating (inject)'],
    ['validating', 'validating (re-check)'],
  ] as const) {
    const d = delta(after[type]!, before[type]);
    const count = d.get(Number.POSITIVE_INFINITY)!;
    rows.push(`| ${label} | ${count} | ${ms(quantile(0.5, d))} | ${ms(quantile(0.99, d))} |`);
  }
  clientLatencies.sort((a, b) => a - b);
  const pct = (q: number) =>
    clientLatencies[Math.min(clientLatencies.length - 1, Math.floor(q * clientLatencies.length))]!;
  const request = 'chaperone_webhook_admission_duration_seconds';
  const decision = 'chaperone_webhook_decision_duration_seconds';
  const mutateOwn = ownQuantiles(own, request, '/mutate/pods');
  const validateOwn = ownQuantiles(own, request, '/validate/pods');
  const mutateDecision = ownQuantiles(own, decision, '/mutate/pods');
  const validateDecision = ownQuantiles(own, decision, '/validate/pods');
  const section = [
    '## Admission webhook',
    '',
    `Date: 2026-11-23. Command: \`node bench/webhook.bench.ts --pods ${totalPods} --concurrency ${concurrency} --write\``,
    `(kube-apiserver v1.34.4 + etcd of the test environment and the webhook process on one machine, ${cpus().length} cores;`,
    'pods are admitted and stored, never scheduled). The webhook runs as its own process',
    '(`node webhook/main.ts`) and answers from its informer cache (Namespaces, SessionPolicies).',
    '',
    `${totalPods} pod creates, ${concurrency} concurrent, in ${seconds.toFixed(1)} s (${(totalPods / seconds).toFixed(0)} pods/s).`,
    '',
    'Webhook latency as the apiserver measures it (`apiserver_admission_webhook_admission_duration_seconds{name="pods.chaperone.dev"}`,',
    'delta over the run; p50/p99 interpolated inside its buckets 5 ms, 25 ms, 100 ms, 500 ms, 1 s, so coarse):',
    '',
    '| webhook | requests | p50 | p99 |',
    '|---|---|---|---|',
    ...rows,
    '',
    "The webhook's own histogram (`chaperone_webhook_admission_duration_seconds`: request received to response sent, finer buckets,",
    'including warm-up): ',
    `mutate p50 ${ms(mutateOwn.p50)} / p99 ${ms(mutateOwn.p99)}, validate p50 ${ms(validateOwn.p50)} / p99 ${ms(validateOwn.p99)};`,
    `of which deciding (\`chaperone_webhook_decision_duration_seconds\`): mutate p50 ${ms(mutateDecision.p50)} / p99 ${ms(mutateDecision.p99)},`,
    `validate p50 ${ms(validateDecision.p50)} / p99 ${ms(validateDecision.p99)}.`,
    `Whole pod create as the client sees it: p50 ${pct(0.5).toFixed(1)} ms, p99 ${pct(0.99).toFixed(1)} ms.`,
    '',
    'Reading: deciding is the small part; what the apiserver measures on top is HTTPS and JSON on both',
    'sides and waiting for CPU: etcd, kube-apiserver, the webhook and the 50-way',
    `client share ${cpus().length} cores (1-minute load average at the end of the run: ${loadavg()[0]!.toFixed(1)}, other`,
    'work included). The p99 sits in the apiserver bucket 100-500 ms, so only its bound is meaningful.',
    '',
  ].join('\n');
  process.stdout.write(`${section}\n`);
  if (values.write) {
    const file = join(import.meta.dirname, '..', 'docs', 'benchmarks.md');
    const current = await readFile(file, 'utf8').catch(() => '# Benchmarks\n');
    const start = current.indexOf('## Admission webhook');
    let updated: string;
    if (start === -1) updated = `${current.trimEnd()}\n\n${section}`;
    else {
      const end = current.indexOf('\n## ', start + 1);
      updated = current.slice(0, start) + section + (end === -1 ? '' : current.slice(end + 1));
    }
    await writeFile(file, updated);
  }
} finally {
  await h.cleanup().catch(() => {});
  await env.stop();
}
