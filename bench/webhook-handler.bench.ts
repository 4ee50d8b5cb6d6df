// The webhook's own CPU per admission, without an apiserver: the HTTP server (Fastify, no TLS) gets
// the AdmissionReviews the apiserver sends for one pod create (mutate, then validate the injected
// pod) and answers from a fixed in-memory ClusterReader, as it does from its informer cache. Process
// CPU time per request is robust to a loaded machine; the patch size is what the apiserver decodes
// and applies per create.
// --baseline <dir>: also loads the webhook of another checkout (e.g. main's, with node_modules) into
// this process and alternates batches of creates between the two, so both see the same load; prints
// both medians and the median of the paired differences.
//   node bench/webhook-handler.bench.ts [--requests 3000] [--log-level error] [--baseline <dir>] [--cpu-prof]
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import type { V1Pod } from '@kubernetes/client-node';
import fastJsonPatch from 'fast-json-patch';
import type { ClusterReader } from '../webhook/cluster.ts';
import type * as ConfigModule from '../webhook/config.ts';
import type * as ConstantsModule from '../webhook/constants.ts';
import { LABELS } from '../webhook/constants.ts';
import type { RawSessionPolicy } from '../webhook/policy.ts';
import type * as ServerModule from '../webhook/server.ts';
import { createTestCa, issueServingCert } from '../webhook/testing/pki.ts';
import { agentPod, benchPolicySpec } from './testing/webhook-pods.ts';

const { values } = parseArgs({
  options: {
    requests: { type: 'string', default: '3000' },
    // The webhook's default is info: a log line per admission (redirect stdout to measure it).
    'log-level': { type: 'string', default: 'error' },
    baseline: { type: 'string' },
    batch: { type: 'string', default: '250' },
  },
});
const requests = Number(values.requests);
const namespace = 'bench';

const policy: RawSessionPolicy = {
  apiVersion: 'chaperone.dev/v1alpha1',
  kind: 'SessionPolicy',
  metadata: { name: 'bench', namespace, generation: 1, uid: 'u-1' },
  spec: benchPolicySpec,
  status: {
    observedGeneration: 1,
    conditions: [{ type: 'Ready', status: 'True', reason: 'Rendered', observedGeneration: 1 }],
  },
};
// The informer hands out the same objects until they change.
const policies = [policy];
const cluster: ClusterReader = {
  namespaceLabels: async () => ({ [LABELS.recording]: 'enabled' }),
  listSessionPolicies: async () => policies,
  getSessionPolicy: async () => policy,
  secretExists: async () => true,
};
const ca = await createTestCa();
const serving = await issueServingCert(ca);

/** The webhook server of the checkout at `root`, answering from `cluster`. */
async function webhookOf(root: string) {
  const load = <T>(path: string): Promise<T> => import(pathToFileURL(resolve(root, path)).href) as Promise<T>;
  const { parseWebhookConfig } = await load<typeof ConfigModule>('webhook/config.ts');
  const { WEBHOOK_PATHS } = await load<typeof ConstantsModule>('webhook/constants.ts');
  const { buildWebhookServer } = await load<typeof ServerModule>('webhook/server.ts');
  const config = parseWebhookConfig({
    sidecarImage: 'ghcr.io/chaperone/chaperone:test',
    systemNamespace: 'chaperone-system',
    dns: { resolvers: ['10.0.0.10'], discoverService: null },
    logLevel: 'error',
  });
  const server = await buildWebhookServer({
    config,
    cluster,
    tls: { cert: serving.certPem, key: serving.keyPem },
    logger: { level: values['log-level'] },
  });
  await server.app.ready();
  return { app: server.app, paths: WEBHOOK_PATHS };
}
type Webhook = Awaited<ReturnType<typeof webhookOf>>;

const pod = (name: string): V1Pod => ({ apiVersion: 'v1', kind: 'Pod', ...agentPod(name, namespace) });
const review = (uid: string, object: V1Pod) => ({
  apiVersion: 'admission.k8s.io/v1',
  kind: 'AdmissionReview',
  request: {
    uid,
    kind: { group: '', version: 'v1', kind: 'Pod' },
    resource: { group: '', version: 'v1', resource: 'pods' },
    requestKind: { group: '', version: 'v1', kind: 'Pod' },
    name: object.metadata?.name,
    namespace,
    operation: 'CREATE',
    userInfo: { username: 'admin', groups: ['system:masters', 'system:authenticated'] },
    object,
    oldObject: null,
    dryRun: false,
    options: { apiVersion: 'meta.k8s.io/v1', kind: 'CreateOptions' },
  },
});
const post = async (webhook: Webhook, path: string, body: object) => {
  const payload = JSON.stringify(body);
  const res = await webhook.app.inject({
    method: 'POST',
    url: path,
    payload,
    headers: { 'content-type': 'application/json' },
  });
  const answer = res.json() as { response: { allowed: boolean; patch?: string; status?: unknown } };
  if (!answer.response.allowed) throw new Error(`refused: ${JSON.stringify(answer.response.status)}`);
  return {
    response: answer.response,
    payload: res.payload,
    requestBytes: payload.length,
    responseBytes: res.payload.length,
  };
};

/** One pod create as the apiserver does it: mutate, apply the patch, validate the result. */
async function create(webhook: Webhook, i: number) {
  const raw = pod(`p-${i}`);
  const mutate = await post(webhook, webhook.paths.mutatePods, review(`m-${i}`, raw));
  const patch = JSON.parse(Buffer.from(mutate.response.patch ?? '', 'base64').toString('utf8'));
  const injected = fastJsonPatch.applyPatch(structuredClone(raw), patch).newDocument;
  const validate = await post(webhook, webhook.paths.validatePods, review(`v-${i}`, injected));
  return { mutate, validate, patchOps: patch.length as number };
}

const own = await webhookOf(resolve(import.meta.dirname, '..'));
const baseline = values.baseline ? await webhookOf(values.baseline) : undefined;
for (const webhook of [own, ...(baseline ? [baseline] : [])]) {
  for (let i = 0; i < 300; i++) await create(webhook, i); // warm-up (JIT)
}
// The client's own share, measured apart and subtracted: what the apiserver would do in its place
// (build and serialize both reviews, parse both answers, decode and apply the patch), against the
// answers the server gave for one pod.
const sample = await create(own, 0);
const mutateAnswer = sample.mutate.payload;
const validateAnswer = sample.validate.payload;
function clientShare(i: number) {
  const raw = pod(`c-${i}`);
  JSON.stringify(review(`m-${i}`, raw));
  const { response } = JSON.parse(mutateAnswer) as { response: { patch: string } };
  const patch = JSON.parse(Buffer.from(response.patch, 'base64').toString('utf8'));
  const injected = fastJsonPatch.applyPatch(structuredClone(raw), patch).newDocument;
  JSON.stringify(review(`v-${i}`, injected));
  JSON.parse(validateAnswer);
}
for (let i = 0; i < 300; i++) clientShare(i);
const clientStart = process.cpuUsage();
for (let i = 0; i < requests; i++) clientShare(i);
const clientCpu = process.cpuUsage(clientStart);
const clientPerCreate = (clientCpu.user + clientCpu.system) / requests;

/** CPU µs per create of `count` creates on `webhook`, the client's share taken out. */
async function batch(webhook: Webhook, count: number, from: number) {
  const cpu0 = process.cpuUsage();
  for (let i = 0; i < count; i++) await create(webhook, from + i);
  const cpu = process.cpuUsage(cpu0);
  return { perCreate: (cpu.user + cpu.system) / count - clientPerCreate, cpu };
}
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const sizes = `mutate: request ${sample.mutate.requestBytes} B, response ${sample.mutate.responseBytes} B, patch ${sample.patchOps} ops
validate: request ${sample.validate.requestBytes} B, response ${sample.validate.responseBytes} B`;

if (!baseline) {
  const t0 = performance.now();
  const { perCreate, cpu } = await batch(own, requests, 1000);
  const wall = performance.now() - t0;
  process.stdout.write(
    [
      `pod creates: ${requests}, wall ${((wall * 1000) / requests).toFixed(0)} µs per create (mutate + validate, in-process)`,
      `CPU per create: ${perCreate.toFixed(0)} µs, the client's share (${clientPerCreate.toFixed(0)} µs) taken out (user ${((cpu.user - clientCpu.user) / requests).toFixed(0)}, system ${((cpu.system - clientCpu.system) / requests).toFixed(0)})`,
      sizes,
      '',
    ].join('\n'),
  );
} else {
  // Alternating batches, the order swapped every round: both sides see the same machine.
  const size = Number(values.batch);
  const rounds = Math.max(1, Math.round(requests / size));
  const ours: number[] = [];
  const theirs: number[] = [];
  for (let r = 0; r < rounds; r++) {
    const from = 1000 + r * size;
    if (r % 2 === 0) {
      ours.push((await batch(own, size, from)).perCreate);
      theirs.push((await batch(baseline, size, from)).perCreate);
    } else {
      theirs.push((await batch(baseline, size, from)).perCreate);
      ours.push((await batch(own, size, from)).perCreate);
    }
  }
  const diffs = ours.map((o, i) => theirs[i]! - o);
  const ratios = ours.map((o, i) => o / theirs[i]!);
  const range = (xs: number[]) => `${Math.min(...xs).toFixed(0)}-${Math.max(...xs).toFixed(0)}`;
  process.stdout.write(
    [
      `pod creates: ${rounds} rounds of ${size} per side, alternating (client's share ${clientPerCreate.toFixed(0)} µs taken out)`,
      `CPU per create, this checkout: median ${median(ours).toFixed(0)} µs (${range(ours)})`,
      `CPU per create, ${values.baseline}: median ${median(theirs).toFixed(0)} µs (${range(theirs)})`,
      `saved per create (paired by round): median ${median(diffs).toFixed(0)} µs (${range(diffs)}); this checkout's CPU / the baseline's: median ${median(ratios).toFixed(2)} (${Math.min(...ratios).toFixed(2)}-${Math.max(...ratios).toFixed(2)})`,
      sizes,
      '',
    ].join('\n'),
  );
  await baseline.app.close();
}
await own.app.close();
