// approvals.backend kubernetes end to end: a sidecar (in this process) in front of the real
// PostgreSQL, its SessionApprovals in the real apiserver under the agent service account's RBAC
// (reached through KUBECONFIG, as outside a cluster), a requireApproval rule, and real psql. The
// test plays the reviewer through the status subresource.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { testEnv } from '../../test/env/index.ts';
import { psql as psqlRaw } from '../../test/env/postgres.ts';
import { until } from '../kubernetes-approvals/testing/approvals.ts';
import { AGENT_SUBJECT, kinds } from '../postgres/testing/harness.ts';
import { kubeApprovalsSidecar } from './testing/kube-approvals.ts';

const env = await testEnv(['kube', 'postgres']);
const direct = async (sql: string) => (await psqlRaw(env.postgres, sql)).trim();

describe('approvals.backend kubernetes through the postgres gateway', { timeout: 120_000 }, () => {
  const sidecar = kubeApprovalsSidecar(env, {
    name: 'sidecar-approvals',
    approvals: { timeoutSeconds: 60 },
  });
  const { pending, decide } = sidecar.reviewer;

  test('a guarded statement waits for the SessionApproval, runs once approved, and a denial errors', async () => {
    const h = sidecar.harness();
    await direct('CREATE TABLE kube_approve_t (id int); INSERT INTO kube_approve_t VALUES (1), (2)');

    const approvedRun = h.psql(['-v', 'ON_ERROR_STOP=1', '-c', 'TRUNCATE kube_approve_t'], {
      token: h.token,
    });
    const first = await until('the SessionApproval', pending);
    assert.equal(first.spec.rule, 'approve-truncate');
    assert.equal(first.spec.statement, 'TRUNCATE kube_approve_t');
    assert.equal(first.spec.subject, AGENT_SUBJECT);
    assert.equal(first.spec.pod, 'agent-0');
    assert.equal(first.spec.target, 'orders-db');
    assert.equal(first.spec.protocol, 'postgres');
    assert.equal(first.spec.policy, 'test-policy');
    assert.equal(
      await direct('SELECT count(*) FROM kube_approve_t'),
      '2',
      'nothing runs before the decision',
    );
    await decide(first.metadata.name, { approved: true, approver: 'alice', reason: 'planned cleanup' });
    const approved = await approvedRun;
    assert.equal(approved.code, 0, approved.stderr);
    assert.equal(await direct('SELECT count(*) FROM kube_approve_t'), '0');

    await direct('INSERT INTO kube_approve_t VALUES (3)');
    const deniedRun = h.psql(['-c', 'TRUNCATE kube_approve_t'], { token: h.token });
    const second = await until('the second SessionApproval', pending);
    assert.notEqual(second.metadata.name, first.metadata.name);
    await decide(second.metadata.name, { approved: false, approver: 'bob', reason: 'not today' });
    const denied = await deniedRun;
    assert.notEqual(denied.code, 0);
    assert.match(
      denied.stderr,
      /ERROR: {2}chaperone: statement denied under approval rule approve-truncate by bob: not today/,
    );
    assert.equal(await direct('SELECT count(*) FROM kube_approve_t'), '1', 'the denied statement never ran');

    const events = await h.waitForSession((evs) => kinds(evs, 'approval.denied').length === 1);
    const granted = await h.waitForSession((evs) => kinds(evs, 'approval.granted').length === 1);
    assert.deepEqual(
      [...granted, ...events]
        .filter((e) => e.kind === 'approval.granted' || e.kind === 'approval.denied')
        .map((e) => [e.kind, e.payload.approver, e.payload.reason]),
      [
        ['approval.granted', 'alice', 'planned cleanup'],
        ['approval.denied', 'bob', 'not today'],
      ],
    );
    assert.deepEqual(
      kinds(granted, 'pg.query').map((e) => e.payload.sql),
      ['TRUNCATE kube_approve_t'],
    );
    assert.equal(kinds(events, 'pg.query').length, 0);
  });
});
