import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { until } from '../../../test/testing/until.ts';
import { createDenyingApprovalBackend } from './denying.ts';
import { createApprovalBackend } from './index.ts';
import { createLocalApprovalBackend, decideLocalApproval, listPendingLocalApprovals } from './local.ts';
import { createManualApprovalBackend } from './testing/manual.ts';
import type { ApprovalRequest } from './types.ts';

const request = (timeoutMs: number): ApprovalRequest => ({
  sessionId: 's-1',
  policy: 'prod-db',
  rule: 'writes-need-approval',
  target: 'db',
  protocol: 'postgres',
  subject: 'system:serviceaccount:agents:bot',
  pod: 'bot-0',
  statement: 'DELETE FROM orders WHERE id = 7',
  timeoutMs,
});

async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'chaperone-approvals-'));
  after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

async function waitForPending(dir: string) {
  return until('a pending request', async () => {
    const pending = await listPendingLocalApprovals(dir).catch(() => []);
    return pending.length > 0 ? pending : undefined;
  });
}

/** Counts the backend's looks that found no decision; `twoMore()` waits for a whole look from now. */
function looks() {
  let count = 0;
  return {
    onNoDecision: () => {
      count += 1;
    },
    // A look already running may have read before now: the second one after now started after it.
    twoMore: () => {
      const target = count + 2;
      return until('two more looks for a decision', () => count >= target);
    },
  };
}

/** A local backend asked for a decision (30 s timeout), once its request is on disk. */
async function pendingLocalRequest() {
  const dir = await tempDir();
  const seen = looks();
  const backend = createLocalApprovalBackend(dir, { pollIntervalMs: 20, onNoDecision: seen.onNoDecision });
  let settled = false;
  const decision = backend.request(request(30_000)).finally(() => {
    settled = true;
  });
  const [pending] = await waitForPending(dir);
  return { dir, seen, decision, pending: pending!, settled: () => settled };
}

describe('local approval backend', () => {
  it('waits until a reviewer approves through a decision file', async () => {
    const { dir, seen, decision, pending, settled } = await pendingLocalRequest();
    assert.equal(pending.statement, 'DELETE FROM orders WHERE id = 7');
    assert.equal(pending.subject, 'system:serviceaccount:agents:bot');
    assert.match(pending.howToDecide, /decision\.json/);
    await seen.twoMore();
    assert.equal(settled(), false, 'still waiting without a decision');
    await decideLocalApproval(dir, pending.id, { approved: true, approver: 'ann', reason: 'looks fine' });
    assert.deepEqual(await decision, { approved: true, approver: 'ann', reason: 'looks fine' });
    assert.deepEqual(await listPendingLocalApprovals(dir), []);
    const closed = JSON.parse(await readFile(join(dir, `${pending.id}.closed.json`), 'utf8'));
    assert.equal(closed.outcome.approved, true);
  });

  it('returns a denial with the reviewer and reason', async () => {
    const { dir, seen, decision, pending, settled } = await pendingLocalRequest();
    // a half-written or invalid file is ignored until it is valid
    await writeFile(join(dir, `${pending.id}.decision.json`), '{"approved": tr');
    await seen.twoMore();
    assert.equal(settled(), false, 'the half-written decision was read and ignored');
    await writeFile(
      join(dir, `${pending.id}.decision.json`),
      '{"approved": false, "approver": "bob", "reason": "not now"}',
    );
    assert.deepEqual(await decision, { approved: false, approver: 'bob', reason: 'not now' });
  });

  it('denies with timedOut when nobody decides in time', async () => {
    const dir = await tempDir();
    const backend = createLocalApprovalBackend(dir, { pollIntervalMs: 20 });
    const started = performance.now();
    const decision = await backend.request(request(200));
    const waited = performance.now() - started;
    assert.equal(decision.approved, false);
    assert.equal(decision.timedOut, true);
    assert.ok(waited >= 195, `waited the whole timeout before denying (${waited} ms)`);
    const files = await readdir(dir);
    assert.ok(files.some((f) => f.endsWith('.closed.json')));
    assert.deepEqual(await listPendingLocalApprovals(dir), []);
  });

  it('stops waiting when the session closes', async () => {
    const dir = await tempDir();
    const backend = createLocalApprovalBackend(dir, { pollIntervalMs: 20 });
    const controller = new AbortController();
    const decision = backend.request(request(30_000), controller.signal);
    await waitForPending(dir);
    controller.abort();
    const result = await decision;
    assert.equal(result.approved, false);
    assert.equal(result.cancelled, true);
  });

  it('fails closed when the directory cannot be written', async () => {
    const dir = await tempDir();
    await writeFile(join(dir, 'file'), '');
    const backend = createLocalApprovalBackend(join(dir, 'file', 'sub'));
    const result = await backend.request(request(30_000));
    assert.equal(result.approved, false);
    assert.match(result.reason ?? '', /could not be written/);
  });

  it('refuses decisions for unknown or malformed ids', async () => {
    const dir = await tempDir();
    await assert.rejects(decideLocalApproval(dir, '../x', { approved: true }), /invalid approval id/);
    await assert.rejects(decideLocalApproval(dir, 'nope', { approved: true }), /no approval request nope/);
  });
});

describe('manual approval backend', () => {
  it('hands requests to the test and returns its decision', async () => {
    const backend = createManualApprovalBackend();
    const decision = backend.request(request(30_000));
    const pending = await backend.nextRequest();
    assert.equal(pending.rule, 'writes-need-approval');
    assert.equal(backend.pending().length, 1);
    assert.equal(backend.decide(pending.id, { approved: true, approver: 'ann' }), true);
    assert.deepEqual(await decision, { approved: true, approver: 'ann' });
    assert.equal(backend.pending().length, 0);
    assert.equal(backend.decide(pending.id, { approved: true }), false, 'already settled');
  });

  it('times out and cancels', async () => {
    const backend = createManualApprovalBackend();
    const timed = await backend.request(request(50));
    assert.deepEqual(
      { approved: timed.approved, timedOut: timed.timedOut },
      { approved: false, timedOut: true },
    );
    const aborted = new AbortController();
    aborted.abort();
    const cancelled = await backend.request(request(30_000), aborted.signal);
    assert.equal(cancelled.cancelled, true);
    assert.equal(backend.pending().length, 0);
  });
});

describe('denying approval backend', () => {
  it('denies at once', async () => {
    const result = await createDenyingApprovalBackend().request(request(30_000));
    assert.equal(result.approved, false);
    assert.match(result.reason ?? '', /not configured/);
  });
});

describe('createApprovalBackend', () => {
  it('picks the backend the config names', async () => {
    const dir = await tempDir();
    const none = createApprovalBackend({ backend: 'none', timeoutSeconds: 1 });
    assert.equal((await none.request(request(1000))).approved, false);
    const local = createApprovalBackend({ backend: 'local', localDir: dir, timeoutSeconds: 1 });
    const pending = local.request(request(150));
    assert.equal((await waitForPending(dir)).length, 1);
    assert.equal((await pending).timedOut, true);
    assert.throws(() => createApprovalBackend({ backend: 'local', timeoutSeconds: 1 }), /localDir/);
    assert.throws(
      () => createApprovalBackend({ backend: 'kubernetes', timeoutSeconds: 1 }),
      /SessionApproval/,
    );
    const manual = createManualApprovalBackend();
    assert.equal(
      createApprovalBackend({ backend: 'kubernetes', timeoutSeconds: 1 }, { kubernetes: () => manual }),
      manual,
    );
  });
});
