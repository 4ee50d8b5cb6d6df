// `kubectl chaperone` against the real apiserver, run through the real kubectl (plugin discovery on
// PATH): a requireApproval statement held by a sidecar shows in `approvals` and `watch`, the
// approval alert's own command approves it and the statement runs, `deny` refuses the next one (the
// webhook stamps the reviewer, the recording keeps it), `sessions` lists the namespace's recording,
// and users without the RBAC get messages naming the permission they lack.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { until } from '../sidecar/kubernetes-approvals/testing/approvals.ts';
import { type Harness, kinds, startHarness } from '../sidecar/postgres/testing/harness.ts';
import { testEnv } from '../test/env/index.ts';
import { psql as psqlRaw } from '../test/env/postgres.ts';
import { ordersPolicySpec } from '../webhook/testing/fixtures.ts';
import { WebhookHarness } from '../webhook/testing/harness.ts';
import { follow, kubectlChaperone, pluginBinDir, userWithRules } from './testing/index.ts';

const env = await testEnv(['kube', 'postgres']);
const direct = async (sql: string) => (await psqlRaw(env.postgres, sql)).trim();

describe('kubectl chaperone with a sidecar holding statements for approval', { timeout: 180_000 }, () => {
  const wh = new WebhookHarness(env.kube);
  const ns = `kc-approvals-${wh.id}`;
  const table = `kc_t_${randomBytes(3).toString('hex')}`;
  let dir: string;
  let bin: string;
  let h: Harness;
  let reviewer: string;
  let agent: string;
  let nobody: string;
  let outsider: string;
  let hook: Server;
  const alerts: { text: string; blocks: unknown[] }[] = [];
  const chaperone = (kubeconfig: string, args: string[]) => kubectlChaperone(env.kube, bin, kubeconfig, args);

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'chaperone-kubectl-plugin-'));
    bin = await pluginBinDir(dir);
    await wh.start();
    await wh.createNamespace(ns, {});
    const approvals = { apiGroups: ['chaperone.dev'], resources: ['sessionapprovals'] };
    agent = await userWithRules(wh.kc, env.kube, dir, ns, 'agent', [
      { ...approvals, verbs: ['create', 'get', 'list', 'watch'] },
    ]);
    reviewer = await userWithRules(wh.kc, env.kube, dir, ns, 'reviewer', [
      { ...approvals, verbs: ['get', 'list', 'watch'] },
      { apiGroups: ['chaperone.dev'], resources: ['sessionapprovals/status'], verbs: ['patch'] },
      { apiGroups: ['chaperone.dev'], resources: ['sessionpolicies'], verbs: ['get', 'list'] },
    ]);
    nobody = await userWithRules(wh.kc, env.kube, dir, ns, 'nobody', []);
    // RBAC lets the outsider decide, but the policy does not name them as a reviewer.
    outsider = await userWithRules(wh.kc, env.kube, dir, ns, 'outsider', [
      { ...approvals, verbs: ['get', 'list', 'watch'] },
      { apiGroups: ['chaperone.dev'], resources: ['sessionapprovals/status'], verbs: ['patch'] },
    ]);

    hook = createServer((req, res) => {
      let body = '';
      req.on('data', (d: Buffer) => {
        body += d.toString();
      });
      req.on('end', () => {
        alerts.push(JSON.parse(body) as { text: string; blocks: unknown[] });
        res.end('ok');
      });
    });
    await new Promise<void>((r) => hook.listen(0, '127.0.0.1', r));

    h = await startHarness(env.postgres, {
      config: {
        guardrails: [
          { name: 'approve-truncate', match: { sqlClasses: ['truncate'] }, action: 'requireApproval' },
        ],
        // The reviewers the operator renders from the SessionPolicy below: the sidecar obeys only them
        // (with none, no service account of the agent's namespace may decide).
        approvals: {
          backend: 'kubernetes',
          timeoutSeconds: 90,
          reviewers: { users: [`system:serviceaccount:${ns}:reviewer`] },
        },
        alerts: {
          webhookUrl: `http://127.0.0.1:${(hook.address() as AddressInfo).port}/hook`,
          on: ['approval'],
        },
      },
      sidecar: {
        pod: { serviceAccount: 'agent', pod: 'agent-0', namespace: ns, node: 'node-1', podUid: 'uid-1' },
        env: { KUBECONFIG: agent },
      },
    });
    // The SessionPolicy the requests name (the webhook checks its reviewers), recording where the sidecar does.
    await wh.createPolicy(
      ns,
      'test-policy',
      ordersPolicySpec({
        recording: { store: { url: h.storeUrl }, signingKeySecret: { name: 'signing-key' } },
        approvals: { reviewers: { users: [`system:serviceaccount:${ns}:reviewer`] } },
      }),
    );
    await direct(`CREATE TABLE ${table} (id int); INSERT INTO ${table} VALUES (1), (2)`);
  });

  after(async () => {
    await h?.close();
    await new Promise((r) => hook?.close(r));
    await direct(`DROP TABLE IF EXISTS ${table}`).catch(() => undefined);
    await wh.cleanup();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('shows the held statement in approvals and watch; the alert’s command approves it and it runs', async () => {
    const watch = follow(env.kube.kubectl, ['chaperone', 'watch', '-n', ns, '--bell'], {
      PATH: `${bin}:${process.env.PATH}`,
      KUBECONFIG: reviewer,
      HOME: process.env.HOME ?? '/root',
    });
    try {
      const run = h.psql(['-v', 'ON_ERROR_STOP=1', '-c', `TRUNCATE ${table}`], { token: h.token });
      const listed = await until('the request in kubectl chaperone approvals', async () => {
        const r = await chaperone(reviewer, ['approvals', '-n', ns]);
        return r.code === 0 && r.stdout.includes('TRUNCATE') ? r.stdout : undefined;
      });
      const [header, row] = listed.trimEnd().split('\n');
      assert.match(header!, /^NAMESPACE +NAME +SUBJECT +SESSION +POD +TARGET +RULE +AGE +LEFT +STATEMENT$/);
      assert.match(
        row!,
        new RegExp(
          `^${ns} +\\S+-1 +agent-alice +\\S+ +agent-0 +orders-db +approve-truncate +\\d+s +\\d+s +TRUNCATE ${table}$`,
        ),
      );

      const json = await chaperone(reviewer, ['approvals', '-n', ns, '--json']);
      const [pending] = json.stdout
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l) as Record<string, unknown>);
      assert.equal(pending!.statement, `TRUNCATE ${table}`);
      assert.equal(pending!.subject, 'agent-alice');
      assert.equal(pending!.rule, 'approve-truncate');
      assert.ok((pending!.secondsLeft as number) > 60 && (pending!.secondsLeft as number) <= 90);
      const name = String(pending!.name);

      const announced = await watch.line(/PENDING/);
      assert.ok(
        announced.includes(`${ns}/${name}: agent-alice asks to run "TRUNCATE ${table}" on orders-db`),
        announced,
      );
      assert.ok(
        announced.endsWith(
          `kubectl chaperone approve ${name} -n ${ns} | kubectl chaperone deny ${name} -n ${ns}\u0007`,
        ),
      );
      assert.equal(await direct(`SELECT count(*) FROM ${table}`), '2', 'nothing runs before the decision');

      // The alert the sidecar sent names the command; the reviewer runs exactly that.
      const alert = await until('the approval alert', async () =>
        alerts.find((a) => a.text.includes('decide with')),
      );
      const command = /decide with: (kubectl chaperone approve [^|]+?) \|/.exec(alert.text)![1]!;
      assert.equal(command, `kubectl chaperone approve --session ${String(pending!.sessionId)} -n ${ns}`);
      assert.ok(
        alert.text.includes(`TRUNCATE ${table}`) ||
          JSON.stringify(alert.blocks).includes(`TRUNCATE ${table}`),
      );
      const approved = await chaperone(reviewer, [
        ...command.split(' ').slice(2),
        '--reason',
        'planned cleanup',
      ]);
      assert.equal(approved.code, 0, approved.stderr);
      assert.match(
        approved.stdout,
        new RegExp(
          `^approved ${ns}/${name} as system:serviceaccount:${ns}:reviewer: agent-alice on orders-db: TRUNCATE ${table}\\n$`,
        ),
      );

      const ran = await run;
      assert.equal(ran.code, 0, ran.stderr);
      assert.equal(await direct(`SELECT count(*) FROM ${table}`), '0');
      assert.match(
        await watch.line(/APPROVED/),
        new RegExp(`APPROVED ${ns}/${name} by system:serviceaccount:${ns}:reviewer: planned cleanup$`),
      );
      const empty = await chaperone(reviewer, ['approvals', '-n', ns]);
      assert.equal(empty.stdout, `no pending approvals in namespace ${ns}\n`);

      const granted = await h.waitForSession((evs) => kinds(evs, 'approval.granted').length === 1);
      assert.equal(
        kinds(granted, 'approval.granted')[0]!.payload.approver,
        `system:serviceaccount:${ns}:reviewer`,
      );
    } finally {
      await watch.stop();
    }
  });

  it('deny refuses the statement, and a decision is final', async () => {
    await direct(`INSERT INTO ${table} VALUES (3)`);
    const run = h.psql(['-c', `TRUNCATE ${table}`], { token: h.token });
    const name = await until('the second request', async () => {
      const r = await chaperone(reviewer, ['approvals', '-n', ns, '--json']);
      const line = r.stdout
        .trim()
        .split('\n')
        .find((l) => l.includes('TRUNCATE'));
      return line ? String((JSON.parse(line) as { name: string }).name) : undefined;
    });
    // Without -n: the plugin finds the namespace holding that name (cluster list refused: context's namespace).
    const denied = await chaperone(reviewer, ['deny', name, '--reason', 'not today']);
    assert.equal(denied.code, 0, denied.stderr);
    assert.match(denied.stdout, new RegExp(`^denied ${ns}/${name} as system:serviceaccount:${ns}:reviewer`));
    const ran = await run;
    assert.notEqual(ran.code, 0);
    assert.match(
      ran.stderr,
      /statement denied under approval rule approve-truncate by system:serviceaccount:.*:reviewer: not today/,
    );
    assert.equal(await direct(`SELECT count(*) FROM ${table}`), '1', 'the denied statement never ran');

    const again = await chaperone(reviewer, ['approve', name, '-n', ns]);
    assert.equal(again.code, 1);
    assert.match(
      again.stderr,
      new RegExp(
        `^kubectl-chaperone: SessionApproval ${ns}/${name} was already denied by system:serviceaccount:${ns}:reviewer at .*; a decision is final\\n$`,
      ),
    );
  });

  it('names the RBAC a user lacks: list for approvals, patch on the status for a decision', async () => {
    const listing = await chaperone(nobody, ['approvals', '-n', ns]);
    assert.equal(listing.code, 4, listing.stderr);
    assert.equal(
      listing.stderr,
      `kubectl-chaperone: forbidden: system:serviceaccount:${ns}:nobody lacks RBAC permission to list sessionapprovals (API group chaperone.dev) in namespace ${ns}; ask a cluster admin for a Role in ${ns} with {apiGroups: ["chaperone.dev"], resources: ["sessionapprovals"], verbs: ["list"]}\n`,
    );
    // Without -n and without cluster-wide list: the context's namespace, said on stderr.
    const fallback = await chaperone(reviewer, ['approvals']);
    assert.equal(fallback.code, 0, fallback.stderr);
    assert.match(
      fallback.stderr,
      new RegExp(`listing namespace ${ns} only: you may not list sessionapprovals in all namespaces`),
    );

    // The agent may read its requests but not decide them.
    const run = h.psql(['-c', `TRUNCATE ${table}`], { token: h.token });
    const name = await until('a third request', async () => {
      const r = await chaperone(agent, ['approvals', '-n', ns, '--json']);
      const line = r.stdout.trim().split('\n')[0];
      return line ? String((JSON.parse(line) as { name: string }).name) : undefined;
    });
    const self = await chaperone(agent, ['approve', name, '-n', ns]);
    assert.equal(self.code, 4);
    assert.match(
      self.stderr,
      new RegExp(
        `forbidden: system:serviceaccount:${ns}:agent lacks RBAC permission to patch sessionapprovals/status \\(API group chaperone.dev\\) in namespace ${ns}; ask a cluster admin for a Role in ${ns} with \\{apiGroups: \\["chaperone.dev"\\], resources: \\["sessionapprovals/status"\\], verbs: \\["patch"\\]\\}`,
      ),
    );
    const cleanup = await chaperone(reviewer, ['deny', name, '-n', ns]);
    assert.equal(cleanup.code, 0, cleanup.stderr);
    await run;
  });

  it('a refusal by the webhook (an agent-namespace account the policy does not name) is shown as the webhook worded it', async () => {
    const run = h.psql(['-c', `TRUNCATE ${table}`], { token: h.token });
    const name = await until('a fourth request', async () => {
      const r = await chaperone(outsider, ['approvals', '-n', ns, '--json']);
      const line = r.stdout.trim().split('\n')[0];
      return line ? String((JSON.parse(line) as { name: string }).name) : undefined;
    });
    const refused = await chaperone(outsider, ['approve', name, '-n', ns]);
    assert.equal(refused.code, 1, refused.stderr);
    assert.match(
      refused.stderr,
      new RegExp(
        `^kubectl-chaperone: refused: admission webhook "sessionapprovals.chaperone.dev" denied the request: chaperone: system:serviceaccount:${ns}:outsider is a service account of namespace ${ns}, where agents run; it may decide only when the policy names it as a reviewer\n$`,
      ),
    );
    const stillPending = await chaperone(reviewer, ['approvals', '-n', ns, '--json']);
    assert.ok(stillPending.stdout.includes(name), 'the refused decision left the request pending');
    assert.equal((await chaperone(reviewer, ['deny', name, '-n', ns])).code, 0);
    await run;
  });

  it('sessions lists the namespace’s recorded sessions from the store the policy names', async () => {
    const r = await until('sessions of the namespace', async () => {
      const out = await chaperone(reviewer, ['sessions', '-n', ns]);
      return out.code === 0 && out.stdout.includes('orders-db') ? out : undefined;
    });
    const [header, ...rows] = r.stdout.trim().split('\n');
    assert.match(header!, /^SESSION +STARTED +NAMESPACE +POD +SUBJECT +TARGET +STATUS +EVENTS$/);
    assert.ok(rows.length >= 3, r.stdout);
    for (const row of rows) assert.match(row, new RegExp(` ${ns} +agent-0 +agent-alice +orders-db `));
    const none = await chaperone(nobody, ['sessions', '-n', ns]);
    assert.equal(none.code, 4);
    assert.match(none.stderr, /lacks RBAC permission to list sessionpolicies \(API group chaperone.dev\)/);
  });
});
