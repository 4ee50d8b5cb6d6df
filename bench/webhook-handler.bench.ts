// The webhook's own CPU per admission, without an apiserver: the HTTP server (Fastify, no TLS) gets
// the AdmissionReviews the apiserver sends for one pod create (mutate, then validate the injected
// pod) and answers from a fixed in-memory ClusterReader, as it does from its informer cache. Process
// CPU time per request is robust to a loaded machine; the patch size is what the apiserver decodes
// and applies per create.
//   node bench/webhook-handler.bench.ts [--requests 3000] [--log-level error] [--cpu-prof]
import { parseArgs } from 'node:util';
import type { V1Pod } from '@kubernetes/client-node';
import fastJsonPatch from 'fast-json-patch';
import type { ClusterReader } from '../webhook/cluster.ts';
import { parseWebhookConfig } from '../webhook/config.ts';
import { LABELS, WEBHOOK_PATHS } from '../webhook/constants.ts';
import type { RawSessionPolicy } from '../webhook/policy.ts';
import { buildWebhookServer } from '../webhook/server.ts';
import { createTestCa, issueServingCert } from '../webhook/testing/pki.ts';
import { agentPod, benchPolicySpec } from './testing/webhook-pods.ts';

const { values } = parseArgs({
  options: {
    requests: { type: 'string', default: '3000' },
    // The webhook's default is info: a log line per admission (redirect stdout to measure it).
    'log-level': { type: 'string', default: 'error' },
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
const config = parseWebhookConfig({
  sidecarImage: 'ghcr.io/chaperone/chaperone:test',
  systemNamespace: 'chaperone-system',
  dns: { resolvers: ['10.0.0.10'], discoverService: null },
  logLevel: 'error',
});
const ca = await createTestCa();
const serving = await issueServingCert(ca);
const server = await buildWebhookServer({
  config,
  cluster,
  tls: { cert: serving.certPem, key: serving.keyPem },
  logger: { level: values['log-level'] },
});
await server.app.ready();

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
const post = async (path: string, body: object) => {
  const payload = JSON.stringify(body);
  const res = await server.app.inject({
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
async function create(i: number) {
  const raw = pod(`p-${i}`);
  const mutate = await post(WEBHOOK_PATHS.mutatePods, review(`m-${i}`, raw));
  const patch = JSON.parse(Buffer.from(mutate.response.patch ?? '', 'base64').toString('utf8'));
  const injected = fastJsonPatch.applyPatch(structuredClone(raw), patch).newDocument;
  const validate = await post(WEBHOOK_PATHS.validatePods, review(`v-${i}`, injected));
  return { mutate, validate, patchOps: patch.length as number };
}

for (let i = 0; i < 300; i++) await create(i); // warm-up (JIT)
// The client's own share, measured apart and subtracted: what the apiserver would do in its place
// (build and serialize both reviews, parse both answers, decode and apply the patch), against the
// answers the server gave for one pod.
const sample = await create(0);
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
const cpu0 = process.cpuUsage();
const t0 = performance.now();
let last: Awaited<ReturnType<typeof create>> | undefined;
for (let i = 0; i < requests; i++) last = await create(i + 1000);
const wall = performance.now() - t0;
const cpu = process.cpuUsage(cpu0);
const perCreate = (cpu.user + cpu.system - (clientCpu.user + clientCpu.system)) / requests;
process.stdout.write(
  [
    `pod creates: ${requests}, wall ${((wall * 1000) / requests).toFixed(0)} µs per create (mutate + validate, in-process)`,
    `CPU per create: ${perCreate.toFixed(0)} µs, the client's share (${((clientCpu.user + clientCpu.system) / requests).toFixed(0)} µs) taken out (user ${((cpu.user - clientCpu.user) / requests).toFixed(0)}, system ${((cpu.system - clientCpu.system) / requests).toFixed(0)})`,
    `mutate: request ${last!.mutate.requestBytes} B, response ${last!.mutate.responseBytes} B, patch ${last!.patchOps} ops`,
    `validate: request ${last!.validate.requestBytes} B, response ${last!.validate.responseBytes} B`,
    '',
  ].join('\n'),
);
await server.app.close();
