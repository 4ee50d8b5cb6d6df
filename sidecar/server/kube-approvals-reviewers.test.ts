// approvals.reviewers checked by the sidecar itself (defence in depth behind the admission webhook):
// a sidecar (in this process) in front of the real PostgreSQL, its SessionApprovals in the real
// apiserver under the agent's RBAC, and NO chaperone webhook, so nothing stamps or refuses what a
// client writes into the status. A non-reviewer's approval is not obeyed: the statement waits until
// the timeout and never runs, the sighting is logged and alerted, and the recorded denial names it.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { testEnv } from '../../test/env/index.ts';
import { psql as psqlRaw } from '../../test/env/postgres.ts';
import { until } from '../kubernetes-approvals/testing/approvals.ts';
import { kinds } from '../postgres/testing/harness.ts';
import { kubeApprovalsSidecar } from './testing/kube-approvals.ts';

const env = await testEnv(['kube', 'postgres']);
const TIMEOUT_SECONDS = 3;
const direct = async (sql: string) => (await psqlRaw(env.postgres, sql)).trim();

describe('approvals.reviewers enforced by the sidecar (no admission webhook)', { timeout: 120_000 }, () => {
  const alerts: string[] = [];
  const alertServer = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      alerts.push(Buffer.concat(chunks).toString('utf8'));
      res.writeHead(200, { 'content-type': 'text/plain' }).end('ok');
    });
  });
  let alertPort = 0;

  // Hooks declared around the sidecar's: the alert server listens before it starts, closes after it stops.
  before(async () => {
    alertServer.listen(0, '127.0.0.1');
    await once(alertServer, 'listening');
    alertPort = (alertServer.address() as AddressInfo).port;
  });
  const sidecar = kubeApprovalsSidecar(env, {
    name: 'sidecar-reviewers',
    approvals: { timeoutSeconds: TIMEOUT_SECONDS, reviewers: { users: ['alice'], groups: ['dba'] } },
    config: () => ({
      alerts: { webhookUrl: `http://127.0.0.1:${alertPort}/hooks/T000/B000/x`, on: ['approval'] },
    }),
  });
  after(() => {
    alertServer.close();
  });
  const { reviewer } = sidecar;
  const pending = reviewer.pending;

  test('a non-reviewer’s approval is not obeyed: the statement times out unrun, alerted and recorded', async () => {
    const h = sidecar.harness();
    await direct('CREATE TABLE kube_reviewers_t (id int); INSERT INTO kube_reviewers_t VALUES (1), (2)');
    const run = h.psql(['-c', 'TRUNCATE kube_reviewers_t'], { token: h.token });
    const approval = await until('the SessionApproval', pending);
    // What a non-reviewer with RBAC on sessionapprovals/status can write when no webhook stamps it.
    await reviewer.decide(approval.metadata.name, { approved: true, approver: 'mallory', reason: 'ship it' });

    const result = await run;
    assert.notEqual(result.code, 0, 'psql fails');
    assert.match(
      result.stderr,
      new RegExp(`chaperone: approval for rule approve-truncate timed out after ${TIMEOUT_SECONDS} s`),
    );
    assert.equal(await direct('SELECT count(*) FROM kube_reviewers_t'), '2', 'the statement never ran');

    const events = await h.waitForSession((evs) => kinds(evs, 'approval.denied').length === 1);
    const [denied] = kinds(events, 'approval.denied');
    assert.equal(denied!.payload.approver, 'chaperone:timeout');
    assert.equal(denied!.payload.timedOut, true);
    assert.equal(
      denied!.payload.reason,
      `no decision within ${TIMEOUT_SECONDS}s; ignored the approval by mallory: mallory is not a reviewer of SessionPolicy test-policy (users: alice; groups: dba)`,
    );
    assert.deepEqual(denied!.payload.ignoredDecisions, [
      {
        approved: true,
        approver: 'mallory',
        reason: 'ship it',
        why: 'mallory is not a reviewer of SessionPolicy test-policy (users: alice; groups: dba)',
      },
    ]);
    assert.equal(kinds(events, 'approval.granted').length, 0);
    assert.equal(kinds(events, 'pg.query').length, 0, 'nothing reached the database');

    const warning = h.logs.find((l) => String(l.msg).includes('not obeyed'));
    assert.ok(warning, 'the unauthorised decision is logged');
    assert.equal(warning.level, 40, 'as a warning');
    assert.match(String(warning.msg), /approval not obeyed: mallory is not a reviewer/);

    const alert = await until('the alert', async () =>
      alerts.find((a) => a.includes('unauthorised approval on SessionApproval')),
    );
    assert.match(alert, /mallory is not a reviewer of SessionPolicy test-policy/);
    assert.match(alert, /TRUNCATE kube_reviewers_t/, 'the alert shows the statement');
  });
});
