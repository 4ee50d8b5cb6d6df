// The Kubernetes API target end to end: kubectl through the sidecar against the real apiserver of
// the test environment. The agent's service-account token is verified; upstream the sidecar acts
// with its own token; guardrails, approvals, Secret masking and watches, read back from the recording.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { CoreV1Api, RbacAuthorizationV1Api } from '@kubernetes/client-node';
import type { RecordedEvent } from '../../recording/index.ts';
import { testEnv } from '../../test/env/index.ts';
import type { HttpHarness } from '../http/testing/harness.ts';
import { decideLocalApproval, listPendingLocalApprovals } from '../server/modules.ts';
import { runProcess } from '../testing/harness.ts';
import { MASKED_DATA } from './secrets.ts';
import { type KubeTarget, startKubeTarget } from './testing/target.ts';

const { kube } = await testEnv(['kube']);
const ns = `kube-gw-${randomBytes(3).toString('hex')}`;
const SECRET_VALUE = 'hunter2-very-secret';

let target: KubeTarget;
let core: CoreV1Api;
let rbac: RbacAuthorizationV1Api;
let h: HttpHarness;
let dir: string;
let kubeconfig: string;

before(async () => {
  target = await startKubeTarget(kube, ns);
  ({ core, rbac, dir, kubeconfig } = target);
  h = await target.startSidecar({
    guardrails: [
      {
        name: 'protect-configmap',
        match: { kubernetes: { verbs: ['delete'], resources: ['configmaps'], names: ['protected'] } },
        action: 'block',
        message: 'this one stays',
      },
      {
        name: 'approve-delete',
        match: { kubernetes: { verbs: ['delete'], resources: ['configmaps'], names: ['needs-approval'] } },
        action: 'requireApproval',
      },
    ],
  });
});

after(() => target?.close());

function kubectl(args: string[], stdin?: string, timeoutMs = 60_000) {
  return runProcess(kube.kubectl, ['--request-timeout=30s', ...args], {
    env: { PATH: process.env.PATH, HOME: dir, KUBECONFIG: kubeconfig },
    ...(stdin !== undefined ? { stdin } : {}),
    timeoutMs,
  });
}

function all(events: RecordedEvent[][]): RecordedEvent[] {
  return events.flat();
}

/** Every recorded event once some event matches (or, with `count`, that many events match). */
async function recorded(match: (e: RecordedEvent) => boolean, count = 1): Promise<RecordedEvent[]> {
  const deadline = Date.now() + 20_000;
  for (;;) {
    const evs = all(await Promise.all((await h.sessionIds()).map((id) => h.events(id).catch(() => []))));
    if (evs.filter(match).length >= count) return evs;
    if (Date.now() > deadline) throw new Error('not recorded in time');
    await new Promise((r) => setTimeout(r, 200));
  }
}

async function pendingApprovals() {
  const deadline = Date.now() + 20_000;
  for (;;) {
    const waiting = await listPendingLocalApprovals(h.approvalsDir);
    if (waiting.length > 0) return waiting;
    if (Date.now() > deadline) throw new Error('no approval requested in time');
    await new Promise((r) => setTimeout(r, 100));
  }
}

const attrs = (e: RecordedEvent) => (e.payload.kubernetes ?? {}) as Record<string, string>;

describe('kubernetes target with kubectl', () => {
  test('apply, get, list and delete go through with the agent’s identity recorded', async () => {
    const cm = `apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata:\n  color: blue\n`;
    const applied = await kubectl(['apply', '-f', '-'], cm);
    assert.equal(applied.code, 0, applied.stderr);
    assert.match(applied.stdout, /configmap\/settings created/);
    const got = await kubectl(['get', 'configmap', 'settings', '-o', 'jsonpath={.data.color}']);
    assert.equal(got.stdout, 'blue', got.stderr);
    const list = await kubectl(['get', 'configmaps']);
    assert.match(list.stdout, /settings/);
    const del = await kubectl(['delete', 'configmap', 'settings']);
    assert.equal(del.code, 0, del.stderr);
    const evs = await recorded((e) => e.kind === 'http.request' && attrs(e).verb === 'delete');
    const start = evs.find((e) => e.kind === 'session.start')!.payload as {
      protocol: string;
      identity: { subject: string };
    };
    assert.equal(start.protocol, 'kubernetes');
    assert.equal(start.identity.subject, `system:serviceaccount:${ns}:agent`);
    const verbs = evs
      .filter((e) => e.kind === 'http.request' && attrs(e).resource === 'configmaps')
      .map((e) => attrs(e).verb);
    for (const v of ['create', 'get', 'list', 'delete']) assert.ok(verbs.includes(v), `${v} in ${verbs}`);
    const created = evs.find(
      (e) => e.kind === 'http.response' && (e.payload.kubernetes as { uids?: string[] })?.uids,
    );
    assert.ok(created, 'object UIDs recorded');
  });

  test('a blocked delete never reaches the apiserver; kubectl prints the rule', async () => {
    await core.createNamespacedConfigMap({
      namespace: ns,
      body: { metadata: { name: 'protected' }, data: { a: '1' } },
    });
    const r = await kubectl(['delete', 'configmap', 'protected']);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /Forbidden.*blocked by rule protect-configmap: this one stays/);
    await core.readNamespacedConfigMap({ name: 'protected', namespace: ns });
  });

  test('an approval holds a delete until a reviewer decides', async () => {
    await core.createNamespacedConfigMap({ namespace: ns, body: { metadata: { name: 'needs-approval' } } });
    const pending = kubectl(['delete', 'configmap', 'needs-approval']);
    const waiting = await pendingApprovals();
    assert.match(waiting[0]!.statement, /^delete configmaps -n kube-gw-\S+ needs-approval$/);
    await core.readNamespacedConfigMap({ name: 'needs-approval', namespace: ns });
    await decideLocalApproval(h.approvalsDir, waiting[0]!.id, { approved: true, approver: 'ann' });
    const r = await pending;
    assert.equal(r.code, 0, r.stderr);
  });

  test('Secret data is masked in get, list, watch, -o yaml and the last-applied annotation', async () => {
    const secret = `apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\nstringData:\n  password: ${SECRET_VALUE}\n`;
    const applied = await kubectl(['apply', '-f', '-'], secret);
    assert.equal(applied.code, 0, applied.stderr);
    const one = await kubectl(['get', 'secret', 'db', '-o', 'json']);
    assert.equal(one.code, 0, one.stderr);
    const doc = JSON.parse(one.stdout) as { data: Record<string, string> };
    assert.equal(doc.data.password, MASKED_DATA);
    assert.doesNotMatch(
      one.stdout,
      new RegExp(`${SECRET_VALUE}|${Buffer.from(SECRET_VALUE).toString('base64')}`),
    );
    const yaml = await kubectl(['get', 'secrets', '-o', 'yaml']);
    assert.doesNotMatch(
      yaml.stdout,
      new RegExp(`${SECRET_VALUE}|${Buffer.from(SECRET_VALUE).toString('base64')}`),
    );
    assert.match(yaml.stdout, /name: db/);
    const table = await kubectl(['get', 'secrets']);
    assert.match(table.stdout, /db\s+Opaque\s+1/);
    // The real value is still there for whoever may read it.
    const real = await core.readNamespacedSecret({ name: 'db', namespace: ns });
    assert.equal(Buffer.from(real.data!.password!, 'base64').toString(), SECRET_VALUE);
    // Every session of the four kubectl runs above: each reply held the Secret (apply's create
    // reply, get -o json, get -o yaml, the table's row metadata), so each was masked.
    const evs = await recorded((e) => e.kind === 'policy.masked' && e.payload.rule === 'secret-data', 4);
    // On failure, say which events hold the value (the whole recording would be cut off).
    const leaks = evs
      .map((e) => JSON.stringify(e))
      .filter(
        (text) => text.includes(SECRET_VALUE) || text.includes(Buffer.from(SECRET_VALUE).toString('base64')),
      );
    assert.deepEqual(leaks, [], 'recorded events holding the Secret value');
  });

  test('a watch is relayed and recorded event by event', async () => {
    const watch = kubectl(
      ['get', 'configmaps', '--watch', '--output-watch-events', '-o', 'name', '--request-timeout=8s'],
      undefined,
      30_000,
    );
    // Create once the watch is recorded as started (its request is in the recording).
    await recorded((e) => e.kind === 'http.request' && attrs(e).verb === 'watch');
    await core.createNamespacedConfigMap({ namespace: ns, body: { metadata: { name: 'watched' } } });
    const r = await watch;
    assert.match(r.stdout, /^configmap\/watched$/m);
    const evs = await recorded(
      (e) => e.kind === 'http.watch' && String(e.payload.text).includes('"watched"'),
    );
    const w = evs.find((e) => e.kind === 'http.watch' && String(e.payload.text).includes('"watched"'))!;
    assert.equal(w.payload.type, 'ADDED');
  });

  test('attacks: impersonation headers, a dry-run delete and path tricks are refused', async () => {
    const as = await kubectl(['get', 'configmaps', '--as=system:admin']);
    assert.notEqual(as.code, 0, 'impersonation refused');
    assert.match(as.stderr, /impersonate-user/i);
    // A server-side dry run is still a delete to the guardrails.
    const dry = await kubectl(['delete', 'configmap', 'protected', '--dry-run=server']);
    assert.notEqual(dry.code, 0, 'dry-run delete refused');
    assert.match(dry.stderr, /protect-configmap/);
    // Encoded dot segments that would reach "protected" by another path never get through.
    const caFile = join(dir, 'sidecar-ca.crt');
    const cfg = (await import('yaml')).parse(await readFile(kubeconfig, 'utf8')) as {
      clusters: { cluster: { 'certificate-authority-data': string } }[];
    };
    await writeFile(caFile, Buffer.from(cfg.clusters[0]!.cluster['certificate-authority-data'], 'base64'));
    const token = (await readFile(join(dir, 'agent-token'), 'utf8')).trim();
    for (const path of [
      `/api/v1/namespaces/${ns}/configmaps/x/%2e%2e/protected`,
      `/api/v1/namespaces/${ns}/configmaps/x/../protected`,
      `/api/v1/namespaces/${ns}/configmaps%2fprotected`,
      `/api/v1/namespaces/${ns}//configmaps/protected`,
    ]) {
      const r = await runProcess(
        'curl',
        [
          '-sS',
          '--path-as-is',
          '-o',
          '/dev/null',
          '-w',
          '%{http_code}',
          '--cacert',
          caFile,
          '-X',
          'DELETE',
          '-H',
          `Authorization: Bearer ${token}`,
          `https://127.0.0.1:${h.port}${path}`,
        ],
        { env: process.env },
      );
      assert.equal(r.stdout, '400', path);
    }
    await core.readNamespacedConfigMap({ name: 'protected', namespace: ns });
  });

  test('impersonate mode: the apiserver sees the agent, with only the right to impersonate that one service account', async () => {
    const upstreamToken = await target.serviceAccountToken('chaperone-impersonator');
    await rbac.createNamespacedRole({
      namespace: ns,
      body: {
        metadata: { name: 'impersonate-agent' },
        rules: [
          {
            apiGroups: [''],
            resources: ['serviceaccounts'],
            verbs: ['impersonate'],
            resourceNames: ['agent'],
          },
        ],
      },
    });
    await target.bindRole(
      'impersonate-agent',
      { kind: 'Role', name: 'impersonate-agent' },
      'chaperone-impersonator',
    );
    const file = join(dir, 'imp', 'config');
    const imp = await target.startSidecar({
      kubeconfig: file,
      upstreamToken,
      kubernetes: { upstreamAuth: 'impersonate' },
    });
    try {
      const env = { PATH: process.env.PATH, HOME: dir, KUBECONFIG: file };
      // The agent's own service account has no RBAC here: the apiserver refuses it by name.
      const r = await runProcess(kube.kubectl, ['get', 'configmaps'], { env });
      assert.notEqual(r.code, 0);
      assert.match(r.stderr, new RegExp(`system:serviceaccount:${ns}:agent.*cannot list`));
      await target.bindRole('agent-view', { kind: 'ClusterRole', name: 'view' }, 'agent');
      let ok = await runProcess(kube.kubectl, ['get', 'configmaps', '-o', 'name'], { env });
      const until = Date.now() + 10_000;
      while (ok.code !== 0 && Date.now() < until) {
        await new Promise((r) => setTimeout(r, 200));
        ok = await runProcess(kube.kubectl, ['get', 'configmaps', '-o', 'name'], { env });
      }
      assert.equal(ok.code, 0, ok.stderr);
      assert.match(ok.stdout, /configmap\/protected/);
    } finally {
      await imp.close();
    }
  });
});
