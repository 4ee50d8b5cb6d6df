// Admission latency of pod creates with and without the webhook, measured the same way, at several
// concurrencies. For each concurrency: the same creates with no webhook registered (baseline), the
// injected pod posted with no webhook, and with chaperone's webhooks registered, each measured by the client (every create timed),
// by the apiserver's own histograms (delta over the run) and by the webhook process (its histograms
// and CPU time). Starts its own kube env and webhook process.
// Closed loop (--rate closed, the default): each of --concurrency clients creates its next pod as
// soon as the last one returns, so the machine runs saturated and latency includes its queues.
// Paced (--rate 40): creates start on a fixed schedule (40 per second), at most --concurrency in
// flight, so latency is that of an admission on a machine that keeps up ("late" counts creates that
// started more than 5 ms after their time because --concurrency were already in flight).
//   node bench/webhook.bench.ts [--pods 300] [--concurrency 1,10,50] [--rate closed,40] [--write]
// --write replaces the "## Admission webhook" section of docs/benchmarks.md.
import { readFile, writeFile } from 'node:fs/promises';
import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import type { V1Pod } from '@kubernetes/client-node';
import { startEnv } from '../test/env/index.ts';
import { WebhookHarness } from '../webhook/testing/harness.ts';
import { type Histogram, histogramDelta, parseHistogram, quantile } from './prometheus.ts';
import { podCreator } from './testing/pod-creator.ts';
import { pidOnPort, totalCpuSeconds } from './testing/process-stats.ts';
import { agentPod, benchPolicySpec } from './testing/webhook-pods.ts';

const { values } = parseArgs({
  options: {
    pods: { type: 'string', default: '300' },
    concurrency: { type: 'string', default: '1,10,50' },
    rate: { type: 'string', default: 'closed' },
    write: { type: 'boolean', default: false },
  },
});
const totalPods = Number(values.pods);
const concurrencies = values.concurrency.split(',').map(Number);
/** Creates per second; undefined: closed loop. */
const rates = values.rate.split(',').map((r) => (r === 'closed' ? undefined : Number(r)));
for (const r of rates) {
  if (r !== undefined && !(r > 0))
    throw new Error(`--rate: "closed" or creates per second, not ${values.rate}`);
}
const rateLabel = (rate: number | undefined) => (rate === undefined ? 'closed' : `${rate}/s`);

/** plain: the agent's pod, no webhook; pre-injected: the injected pod, no webhook; webhook: ours. */
type Mode = 'plain' | 'pre-injected' | 'webhook';

/** What one run measured. */
interface Run {
  seconds: number;
  /** Paced runs: creates that started more than 5 ms late (all clients busy). */
  late?: number;
  client: number[];
  request: Histogram;
  stepAdmit: Histogram;
  stepValidate: Histogram;
  webhookAdmit?: Histogram;
  webhookValidate?: Histogram;
  ownMutate?: Histogram;
  ownMutateDecision?: Histogram;
  webhookCpuPerPod?: number;
  apiserverCpuPerPod: number;
  /** TLS connections the apiserver opened to the webhook during the run. */
  tlsConnections?: number;
}

function counter(text: string, metric: string): number {
  const line = text.split('\n').find((l) => l.startsWith(`${metric} `));
  return line ? Number(line.slice(metric.length + 1)) : 0;
}

// BENCH_CPU_PROF=<dir>: the webhook process writes a V8 CPU profile there when it exits.
if (process.env.BENCH_CPU_PROF) {
  process.env.NODE_OPTIONS = `${process.env.NODE_OPTIONS ?? ''} --cpu-prof --cpu-prof-dir=${process.env.BENCH_CPU_PROF}`;
}
const env = await startEnv(['kube']);
const h = new WebhookHarness(env.info.kube!);
try {
  // The webhook in its own process, as deployed: its event loop is not shared with this client.
  await h.start({ logLevel: 'error' }, true);
  delete process.env.NODE_OPTIONS;
  const apiserverPid = await pidOnPort(Number(new URL(env.info.kube!.server).port));
  const ns = await h.recordedNamespace('bench');
  await h.createPolicy(ns, 'bench', benchPolicySpec);
  const pod = (name: string): V1Pod => agentPod(name);
  const injected = async () => {
    const probe = await h.core.createNamespacedPod({ namespace: ns, body: pod('probe'), dryRun: 'All' });
    return probe.spec?.initContainers?.some((c) => c.name === 'chaperone') ?? false;
  };
  const setWebhook = async (on: boolean) => {
    if (on) await h.registerConfigurations(h.ca.certPem);
    else await h.deleteConfigurations();
    const deadline = Date.now() + 30_000;
    while ((await injected()) !== on) {
      if (Date.now() > deadline) throw new Error(`webhook still ${on ? 'inactive' : 'active'} after 30 s`);
      await new Promise((r) => setTimeout(r, 100));
    }
  };

  const apiMetrics = () => h.mustKubectl(['get', '--raw', '/metrics']);
  const podCreate = { verb: 'POST', resource: 'pods', subresource: '', dry_run: '' };
  // No resource label on this one: only pods are created during a run.
  const step = (type: string) => ({ operation: 'CREATE', type });
  const webhookMetric = 'apiserver_admission_webhook_admission_duration_seconds';
  const ours = (type: string) => ({ name: 'pods.chaperone.dev', operation: 'CREATE', type });
  const own = 'chaperone_webhook_admission_duration_seconds';
  const ownDecision = 'chaperone_webhook_decision_duration_seconds';

  // The pod as the webhook injects it, to post with no webhook registered: the apiserver's cost of
  // storing a bigger pod, apart from the cost of calling the webhooks.
  await setWebhook(true);
  const injectedTemplate = await h.core.createNamespacedPod({
    namespace: ns,
    body: pod('template'),
    dryRun: 'All',
  });
  const preInjected = (name: string): V1Pod => {
    const { metadata, spec } = structuredClone(injectedTemplate);
    return {
      metadata: { name, labels: metadata?.labels ?? {}, annotations: metadata?.annotations ?? {} },
      spec: spec!,
    };
  };

  const WARM_UP = 100;
  let podSeq = 0;
  const measure = async (concurrency: number, mode: Mode, rate?: number): Promise<Run> => {
    const withWebhook = mode === 'webhook';
    const body = mode === 'pre-injected' ? preInjected : pod;
    await setWebhook(withWebhook);
    const client = await podCreator(h.kc, h.kube.server, concurrency);
    // Warm-up: connections, JIT, caches; at least WARM_UP creates, so that the first run (concurrency
    // 1) does not measure the webhook's JIT compiling its handlers.
    for (let i = 0; i < Math.max(2, Math.ceil(WARM_UP / concurrency)); i++) {
      await Promise.all(
        Array.from({ length: concurrency }, () => client.create(ns, body(`warm-${podSeq++}`))),
      );
    }
    const before = await apiMetrics();
    const ownBefore = withWebhook ? await h.webhookGet('/metrics') : '';
    const cpuBefore = await totalCpuSeconds(h.process?.pid);
    const apiCpuBefore = await totalCpuSeconds(apiserverPid);
    const tlsBefore = withWebhook ? counter(ownBefore, 'chaperone_webhook_tls_connections_total') : 0;
    const latencies: number[] = [];
    const createOne = async () => {
      const name = `bench-${podSeq++}`;
      const t0 = performance.now();
      const created = await client.create(ns, body(name));
      latencies.push(performance.now() - t0);
      const hasSidecar = created.spec?.initContainers?.some((c) => c.name === 'chaperone') ?? false;
      if (hasSidecar !== (mode !== 'plain')) throw new Error(`pod ${name}: injected=${hasSidecar}`);
    };
    let late = 0;
    const started = performance.now();
    if (rate === undefined) {
      let next = 0;
      await Promise.all(
        Array.from({ length: concurrency }, async () => {
          while (next < totalPods) {
            next++;
            await createOne();
          }
        }),
      );
    } else {
      // Open loop: create i starts at started + i / rate, or when one of `concurrency` slots frees.
      const inFlight = new Set<Promise<void>>();
      const failures: unknown[] = [];
      for (let i = 0; i < totalPods; i++) {
        const due = started + (i * 1000) / rate;
        const wait = due - performance.now();
        if (wait > 0) await new Promise((r) => setTimeout(r, wait));
        while (inFlight.size >= concurrency) await Promise.race(inFlight);
        if (performance.now() - due > 5) late++;
        const p: Promise<void> = createOne()
          .catch((error: unknown) => void failures.push(error))
          .finally(() => inFlight.delete(p));
        inFlight.add(p);
        if (failures.length > 0) throw failures[0];
      }
      await Promise.all(inFlight);
      if (failures.length > 0) throw failures[0];
    }
    const seconds = (performance.now() - started) / 1000;
    client.close();
    const cpuAfter = await totalCpuSeconds(h.process?.pid);
    const apiCpuAfter = await totalCpuSeconds(apiserverPid);
    const after = await apiMetrics();
    if (process.env.BENCH_DEBUG)
      process.stderr.write(
        after
          .split('\n')
          .filter((l) => l.includes('admission_step_admission_duration_seconds_count'))
          .join('\n'),
      );
    const ownAfter = withWebhook ? await h.webhookGet('/metrics') : '';
    const d = (metric: string, labels: Record<string, string>, a = after, b = before) =>
      histogramDelta(parseHistogram(a, metric, labels), parseHistogram(b, metric, labels));
    const run: Run = {
      seconds,
      ...(rate === undefined ? {} : { late }),
      client: latencies.sort((x, y) => x - y),
      request: d('apiserver_request_duration_seconds', podCreate),
      stepAdmit: d('apiserver_admission_step_admission_duration_seconds', step('admit')),
      stepValidate: d('apiserver_admission_step_admission_duration_seconds', step('validate')),
      apiserverCpuPerPod: (apiCpuAfter - apiCpuBefore) / totalPods,
    };
    if (withWebhook) {
      run.webhookAdmit = d(webhookMetric, ours('admit'));
      run.webhookValidate = d(webhookMetric, ours('validating'));
      run.ownMutate = d(own, { path: '/mutate/pods' }, ownAfter, ownBefore);
      run.ownMutateDecision = d(ownDecision, { path: '/mutate/pods' }, ownAfter, ownBefore);
      run.webhookCpuPerPod = (cpuAfter - cpuBefore) / totalPods;
      run.tlsConnections = counter(ownAfter, 'chaperone_webhook_tls_connections_total') - tlsBefore;
    }
    // Unscheduled pods go at once; a growing store would make later runs slower than earlier ones.
    await h.core.deleteCollectionNamespacedPod({ namespace: ns });
    return run;
  };

  // What the webhook process spends with no admission (informers, timers, GC): a share of every
  // CPU-per-pod figure, the larger the slower the run.
  const idle0 = await totalCpuSeconds(h.process?.pid);
  const idleStart = performance.now();
  await new Promise((r) => setTimeout(r, 5000));
  const idleCpuMsPerSecond =
    (((await totalCpuSeconds(h.process?.pid)) - idle0) / ((performance.now() - idleStart) / 1000)) * 1000;
  const ms = (s: number | undefined) => (s === undefined || Number.isNaN(s) ? '–' : (s * 1000).toFixed(1));
  const pct = (sorted: number[], q: number) =>
    sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
  const hist = (x: Histogram | undefined) =>
    x ? `${ms(x.sum / x.count)} / ${ms(quantile(0.5, x))} / ${ms(quantile(0.99, x))}` : '–';
  const rows: string[] = [];
  const shares: string[] = [];
  for (const concurrency of concurrencies)
    for (const rate of rates) {
      const runs = {
        off: await measure(concurrency, 'plain', rate),
        big: await measure(concurrency, 'pre-injected', rate),
        on: await measure(concurrency, 'webhook', rate),
      };
      for (const [label, r] of [
        ['none', runs.off],
        ['none, injected pod posted', runs.big],
        ['chaperone', runs.on],
      ] as const) {
        rows.push(
          `| ${concurrency} | ${rateLabel(rate)}${r.late ? ` (${r.late} late)` : ''} | ${label} | ${(totalPods / r.seconds).toFixed(0)} | ${pct(r.client, 0.5).toFixed(1)} / ${pct(r.client, 0.99).toFixed(1)} | ${hist(r.request)} | ${hist(r.stepAdmit)} | ${hist(r.stepValidate)} | ${hist(r.webhookAdmit)} | ${hist(r.webhookValidate)} | ${r.ownMutate ? `${ms(quantile(0.5, r.ownMutate))} / ${ms(quantile(0.99, r.ownMutate))}` : '–'} | ${r.ownMutateDecision ? ms(quantile(0.5, r.ownMutateDecision)) : '–'} | ${r.webhookCpuPerPod !== undefined ? ms(r.webhookCpuPerPod) : '–'} | ${ms(r.apiserverCpuPerPod)} | ${r.tlsConnections ?? '–'} |`,
        );
      }
      const p = (r: Run, q: number) => pct(r.client, q);
      const step = (r: Run) => ms((r.stepAdmit.sum + r.stepValidate.sum) / r.stepAdmit.count);
      shares.push(
        `- concurrency ${concurrency}, ${rate === undefined ? 'closed loop' : `paced at ${rate} creates/s`}: against the plain pod with no webhook, chaperone adds ${(p(runs.on, 0.5) - p(runs.off, 0.5)).toFixed(1)} ms at p50 and ${(p(runs.on, 0.99) - p(runs.off, 0.99)).toFixed(1)} ms at p99 to a pod create as the client sees it; against the injected pod posted with no webhook, ${(p(runs.on, 0.5) - p(runs.big, 0.5)).toFixed(1)} / ${(p(runs.on, 0.99) - p(runs.big, 0.99)).toFixed(1)} ms. Mean admission (mutating + validating steps): ${step(runs.on)} ms against ${step(runs.off)} ms.`,
      );
    }

  const date = new Date().toISOString().slice(0, 16).replace('T', ' ');
  const section = [
    '## Admission webhook',
    '',
    `Date: ${date} UTC. Command: \`node bench/webhook.bench.ts --pods ${totalPods} --concurrency ${concurrencies.join(',')} --rate ${rates.map(rateLabel).join(',').replaceAll('/s', '')} --write\``,
    `(kube-apiserver + etcd of the test environment, the webhook as its own process (\`node webhook/main.ts\`)`,
    `and the client on one machine, ${cpus().length} cores, shared with other work: 1-minute load average ${loadavg()[0]!.toFixed(1)} at the end).`,
    'Pods are admitted and stored, never scheduled. For each concurrency the same number of creates',
    "runs three times: the agent's pod with no webhook registered; the pod as chaperone injects it,",
    "posted with no webhook registered (what storing the bigger pod costs by itself); the agent's pod",
    "with chaperone's mutating and validating pod webhooks registered.",
    `The webhook process idle: ${idleCpuMsPerSecond.toFixed(1)} ms of CPU per second (included in its CPU per pod).`,
    '',
    "Columns: client-timed pod create p50 / p99 (ms); the apiserver's own histograms as",
    'mean / p50 / p99 in ms (delta over the run; the mean is exact, from _sum/_count, the quantiles are',
    'interpolated in coarse buckets: 5, 25, 50, 100, 200 ms... for requests, 5, 25, 100, 500 ms for',
    'admission); "request" is `apiserver_request_duration_seconds` for POST pods, "step" is',
    '`apiserver_admission_step_admission_duration_seconds` (all mutating / all validating admission),',
    '"webhook" is `apiserver_admission_webhook_admission_duration_seconds` for pods.chaperone.dev',
    '(TLS, network and our handler); "own" is the webhook\'s request histogram and "decide" its',
    'decision histogram (p50); CPU columns are process CPU time (user + system) per pod; TLS handshakes',
    'counts the connections the webhook accepted during the run (`chaperone_webhook_tls_connections_total`).',
    '',
    '| concurrency | load | webhooks | pods/s | client p50 / p99 | request | step: mutating | step: validating | webhook: mutate | webhook: validate | own mutate p50 / p99 | decide p50 | webhook CPU ms/pod | apiserver CPU ms/pod | TLS handshakes |',
    '| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
    ...rows,
    '',
    ...shares,
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
