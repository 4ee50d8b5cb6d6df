// Attribution end to end against the real kube-apiserver (with its job controller) and the real
// webhook: a Job created by user alice (impersonated, as `kubectl --as=alice` does) gets alice
// stamped into its pod template; the job controller creates the pod, which keeps the stamp and
// hands it to the sidecar; the sidecar (started with that pod's downward-API env, as the pod runner
// would) records alice as the launcher, and `chaperone sessions ls --launcher alice` finds it.
// Forged and edited stamps are refused.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { RbacAuthorizationV1Api, type V1Pod } from '@kubernetes/client-node';
import pg from 'pg';
import { podIdentityFromEnv } from '../../sidecar/identity/index.ts';
import { kinds, startHarness } from '../../sidecar/postgres/testing/harness.ts';
import { LAUNCHED_BY_ANNOTATION } from '../../webhook/attribution/index.ts';
import { ordersPolicySpec } from '../../webhook/testing/fixtures.ts';
import { WebhookHarness } from '../../webhook/testing/harness.ts';
import { testEnv } from '../env/index.ts';
import { until } from '../testing/until.ts';

const exec = promisify(execFile);
const { kube, postgres } = await testEnv(['kube', 'postgres']);
const h = new WebhookHarness(kube);

const podTemplate = {
  metadata: { labels: { app: 'agent' } },
  spec: {
    restartPolicy: 'Never',
    securityContext: { runAsUser: 1000, runAsGroup: 1000 },
    containers: [{ name: 'agent', image: 'registry.invalid/agent:1', command: ['psql'] }],
  },
};

function launcherOf(obj: { metadata?: { annotations?: Record<string, string> } } | undefined) {
  const raw = obj?.metadata?.annotations?.[LAUNCHED_BY_ANNOTATION];
  return raw === undefined
    ? undefined
    : (JSON.parse(raw) as { username: string; via: { kind: string; name?: string } });
}

let ns: string;
const as = (user: string, args: string[], input?: object) =>
  h.kubectl([`--as=${user}`, '-n', ns, ...args], input);

describe('attribution: who launched the workload', () => {
  before(async () => {
    // The test control plane's controller manager authenticates as the admin certificate.
    ns = await h.startInRecordedNamespace(
      'attr',
      { orders: ordersPolicySpec() },
      {
        config: { templateControllers: ['chaperone-test-admin'] },
        probe: { metadata: { name: 'probe', labels: { app: 'agent' } }, spec: podTemplate.spec } as V1Pod,
      },
    );
    // alice and bob may create and change pods and workloads in the namespace, nothing more.
    const rbac = h.kc.makeApiClient(RbacAuthorizationV1Api);
    await rbac.createNamespacedRole({
      namespace: ns,
      body: {
        metadata: { name: 'workloads' },
        rules: [
          { apiGroups: [''], resources: ['pods'], verbs: ['create', 'get', 'list', 'patch', 'update'] },
          { apiGroups: ['apps'], resources: ['deployments/scale'], verbs: ['get', 'patch', 'update'] },
          {
            apiGroups: ['batch', 'apps'],
            resources: ['jobs', 'deployments'],
            verbs: ['create', 'get', 'patch', 'update'],
          },
        ],
      },
    });
    await rbac.createNamespacedRoleBinding({
      namespace: ns,
      body: {
        metadata: { name: 'workloads' },
        roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'workloads' },
        subjects: ['alice', 'bob'].map((name) => ({
          apiGroup: 'rbac.authorization.k8s.io',
          kind: 'User',
          name,
        })),
      },
    });
  });
  after(() => h.cleanup());

  it('a Job created by alice runs a pod whose recording names alice as the launcher', async () => {
    const job = {
      apiVersion: 'batch/v1',
      kind: 'Job',
      metadata: { name: 'nightly' },
      spec: { backoffLimit: 0, template: podTemplate },
    };
    const created = await as('alice', ['create', '-f', '-', '-o', 'json'], job);
    assert.ok(created.ok, created.out);
    const stamped = launcherOf(JSON.parse(created.out).spec.template);
    assert.equal(stamped?.username, 'alice');
    assert.deepEqual(stamped?.via, { kind: 'Job', namespace: ns, name: 'nightly' });

    // The job controller (system:kube-controller-manager) creates the pod: the stamp is carried.
    const pod = await until(
      'the job controller creates the pod',
      async () => {
        const list = await h.core.listNamespacedPod({ namespace: ns, labelSelector: 'job-name=nightly' });
        return list.items[0];
      },
      { intervalMs: 200 },
    ).catch(async (error) => {
      throw new Error(
        `${error.message}; events: ${await h.kubectl(['-n', ns, 'get', 'events', '-o', 'custom-columns=R:.reason,M:.message']).then((r) => r.out)}`,
      );
    });
    assert.equal(launcherOf(pod)?.username, 'alice');
    const sidecar = pod.spec?.initContainers?.find((c) => c.name === 'chaperone');
    const env = sidecar?.env?.find((e) => e.name === 'CHAPERONE_LAUNCHED_BY');
    assert.equal(env?.valueFrom?.fieldRef?.fieldPath, `metadata.annotations['${LAUNCHED_BY_ANNOTATION}']`);

    // The sidecar as the kubelet would start it: downward-API env resolved from this pod.
    const identity = podIdentityFromEnv({
      CHAPERONE_POD_NAME: pod.metadata!.name!,
      CHAPERONE_POD_NAMESPACE: ns,
      CHAPERONE_POD_UID: pod.metadata!.uid!,
      CHAPERONE_SERVICE_ACCOUNT: pod.spec!.serviceAccountName ?? 'default',
      CHAPERONE_LAUNCHED_BY: pod.metadata!.annotations![LAUNCHED_BY_ANNOTATION]!,
    });
    const harness = await startHarness(postgres, { sidecar: { pod: identity } });
    after(() => harness.close());
    const client = new pg.Client(harness.clientConfig());
    await client.connect();
    await client.query('SELECT 1');
    await client.end();
    const events = await harness.waitForSession((evs) => kinds(evs, 'session.end').length > 0);
    const header = kinds(events, 'session.start')[0]!.payload as {
      identity: { launchedBy: string; attribution: Record<string, unknown> };
    };
    assert.equal(header.identity.launchedBy, 'alice');
    assert.deepEqual(header.identity.attribution.workload, { kind: 'Job', namespace: ns, name: 'nightly' });
    assert.equal(header.identity.attribution.serviceAccount, `system:serviceaccount:${ns}:default`);
    assert.equal((header.identity.attribution.token as { subject: string }).subject, 'agent-alice');

    const cli = (launcher: string) =>
      exec(process.execPath, [
        'cli/main.ts',
        'sessions',
        'ls',
        '--json',
        '--launcher',
        launcher,
        '--store',
        harness.storeUrl,
      ]);
    const found = (await cli('alice')).stdout.trim().split('\n').filter(Boolean);
    assert.equal(found.length, 1);
    assert.equal(JSON.parse(found[0]!).launchedBy, 'alice');
    assert.equal((await cli('bob')).stdout.trim(), '');
  });

  it('refuses a pod created with a forged launcher, and an edit of a workload stamp', async () => {
    const forged = await as('alice', ['create', '-f', '-'], {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: {
        name: 'forged',
        labels: podTemplate.metadata.labels,
        annotations: {
          [LAUNCHED_BY_ANNOTATION]: JSON.stringify({ username: 'bob', via: { kind: 'Pod', namespace: ns } }),
        },
      },
      spec: podTemplate.spec,
    });
    assert.equal(forged.ok, false);
    assert.match(forged.out, /chaperone\.dev\/launched-by set by the creator names someone else/);

    const deployment = {
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: { name: 'web' },
      spec: {
        replicas: 0,
        selector: { matchLabels: { app: 'agent' } },
        template: { ...podTemplate, spec: { ...podTemplate.spec, restartPolicy: 'Always' } },
      },
    };
    const createdDeployment = await as('alice', ['create', '-f', '-'], deployment);
    assert.ok(createdDeployment.ok, createdDeployment.out);
    const edit = await as('bob', [
      'patch',
      'deployment',
      'web',
      '--type=merge',
      '-p',
      JSON.stringify({
        spec: {
          template: {
            metadata: {
              annotations: { [LAUNCHED_BY_ANNOTATION]: '{"username":"carol","via":{"kind":"Deployment"}}' },
            },
          },
        },
      }),
    ]);
    assert.equal(edit.ok, false);
    assert.match(edit.out, /launched-by edited/);
    // Scaling keeps alice; changing what runs makes bob the launcher of the next pods.
    assert.ok((await as('bob', ['scale', 'deployment', 'web', '--replicas=1'])).ok);
    const read = async () =>
      JSON.parse(await h.mustKubectl(['-n', ns, 'get', 'deployment', 'web', '-o', 'json']));
    assert.equal(launcherOf((await read()).spec.template)?.username, 'alice');
    const image = await as('bob', ['set', 'image', 'deployment/web', 'agent=registry.invalid/agent:2']);
    assert.ok(image.ok, image.out);
    assert.equal(launcherOf((await read()).spec.template)?.username, 'bob');
    // A pod's stamp cannot be changed afterwards either.
    const pods = await h.core.listNamespacedPod({ namespace: ns, labelSelector: 'job-name=nightly' });
    const name = pods.items[0]!.metadata!.name!;
    const annotate = await as('alice', [
      'annotate',
      '--overwrite',
      'pod',
      name,
      `${LAUNCHED_BY_ANNOTATION}={"username":"alice","via":{"kind":"Pod"}}`,
    ]);
    assert.equal(annotate.ok, false);
    assert.match(annotate.out, /cannot be changed after the pod was created/);
  });
});
