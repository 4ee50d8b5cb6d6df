// The SessionApproval backend against the real apiserver: a reviewer's decision through the status
// subresource reaches the waiting request; denial; timeout (with and without the RBAC to mark the
// request Expired); cancellation by the session; decisions by non-reviewers are not obeyed (the
// webhook does not run here, so nothing stamps or refuses what a client writes into the status).
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { CoreV1Api, type KubeConfig } from '@kubernetes/client-node';
import { testEnv } from '../../test/env/index.ts';
import { kubeConfigFor } from '../../test/env/kube.ts';
import {
  type ApprovalRequest,
  approvalName,
  createKubernetesApprovalBackend,
  type UnauthorisedDecision,
} from './index.ts';
import { approvalNamespaceWithAgent, reviewerIn, until } from './testing/approvals.ts';

const env = await testEnv(['kube']);

describe('Kubernetes approval backend', { timeout: 120_000 }, () => {
  const admin = kubeConfigFor(env.kube);
  const core = admin.makeApiClient(CoreV1Api);
  const ns = `approvals-${randomBytes(3).toString('hex')}`;
  let agentConfig: KubeConfig;

  const request = (sessionId: string, timeoutMs: number): ApprovalRequest => ({
    sessionId,
    policy: 'billing',
    rule: 'approve-writes',
    target: 'db',
    protocol: 'postgres',
    subject: 'system:serviceaccount:agents:bot',
    pod: 'agent-0',
    statement: 'UPDATE invoices SET paid = true',
    timeoutMs,
  });
  const { list, decide } = reviewerIn(admin, ns);
  const approvalsOf = async (sessionId: string) =>
    (await list()).filter((a) => a.spec.sessionId === sessionId);
  /** Waits until the session has made `count` SessionApprovals. */
  const approvalsMade = (what: string, sessionId: string, count: number) =>
    until(what, async () => ((await approvalsOf(sessionId)).length === count ? true : undefined));

  before(async () => {
    agentConfig = await approvalNamespaceWithAgent(admin, env.kube, ns);
  });

  after(async () => {
    await core.deleteNamespace({ name: ns }).catch(() => undefined);
  });

  it('names approvals <sessionId>-<n> as valid object names', () => {
    assert.equal(approvalName('Sess_ABC', 1), 'sess-abc-1');
    assert.equal(approvalName('-x-', 2), 'x-2');
    assert.ok(approvalName('a'.repeat(400), 12).length <= 253);
  });

  it('resolves approved with the approver once a reviewer decides through the status subresource', async () => {
    const backend = createKubernetesApprovalBackend({ namespace: ns, kubeConfig: agentConfig });
    const started = Date.now();
    const pending = backend.request(request('sess-approve', 30_000));
    const [approval] = await until('the SessionApproval', async () => {
      const list = await approvalsOf('sess-approve');
      return list.length > 0 ? list : undefined;
    });
    assert.equal(approval!.metadata.name, 'sess-approve-1');
    assert.equal(approval!.spec.statement, 'UPDATE invoices SET paid = true');
    assert.equal(approval!.spec.rule, 'approve-writes');
    assert.equal(approval!.spec.pod, 'agent-0');
    const expiresAt = Date.parse(String(approval!.spec.expiresAt));
    assert.ok(expiresAt >= started + 29_000 && expiresAt <= Date.now() + 30_000);
    await decide(approval!.metadata.name, { approved: true, reason: 'looks fine', approver: 'alice' });
    assert.deepEqual(await pending, { approved: true, approver: 'alice', reason: 'looks fine' });
  });

  it('resolves denied on a negative decision, numbering further requests of the session', async () => {
    const backend = createKubernetesApprovalBackend({ namespace: ns, kubeConfig: agentConfig });
    const first = backend.request(request('sess-deny', 30_000));
    await approvalsMade('first approval', 'sess-deny', 1);
    await decide('sess-deny-1', { approved: false, reason: 'not today', approver: 'bob' });
    assert.deepEqual(await first, { approved: false, approver: 'bob', reason: 'not today' });
    const second = backend.request(request('sess-deny', 30_000));
    await approvalsMade('second approval', 'sess-deny', 2);
    await decide('sess-deny-2', { approved: false });
    assert.deepEqual(await second, { approved: false });
  });

  it('times out as denied and marks the request Expired when allowed', async () => {
    const backend = createKubernetesApprovalBackend({ namespace: ns, kubeConfig: admin });
    const decision = await backend.request(request('sess-timeout', 1500));
    assert.equal(decision.approved, false);
    assert.equal(decision.timedOut, true);
    const [approval] = await approvalsOf('sess-timeout');
    assert.equal(approval?.status?.phase, 'Expired');
  });

  it('times out without touching the status when RBAC forbids it', async () => {
    const warnings: string[] = [];
    const backend = createKubernetesApprovalBackend({
      namespace: ns,
      kubeConfig: agentConfig,
      onWarning: (w) => warnings.push(w),
    });
    const decision = await backend.request(request('sess-timeout-agent', 1500));
    assert.equal(decision.timedOut, true);
    const [approval] = await approvalsOf('sess-timeout-agent');
    assert.equal(approval?.status?.phase, undefined);
    assert.deepEqual(warnings, [], 'a forbidden status write is expected, not a warning');
  });

  describe('with reviewers named by the policy', () => {
    const reviewers = { users: ['alice'], groups: ['dba'] };
    const firstApproval = async (sessionId: string) =>
      until(`the SessionApproval of ${sessionId}`, async () => (await approvalsOf(sessionId))[0]);
    /** A backend obeying only `reviewers`; `seen` collects the decisions it did not obey. */
    const reviewedBackend = (options: { onWarning?: (w: string) => void } = {}) => {
      const seen: UnauthorisedDecision[] = [];
      const backend = createKubernetesApprovalBackend({
        namespace: ns,
        kubeConfig: agentConfig,
        reviewers,
        onUnauthorisedDecision: (s) => seen.push(s),
        ...options,
      });
      return { backend, seen };
    };

    it('does not obey an approval written by a non-reviewer: it waits, reports it once, and times out naming it', async () => {
      const warnings: string[] = [];
      const { backend, seen } = reviewedBackend({ onWarning: (w) => warnings.push(w) });
      const pending = backend.request(request('sess-intruder', 4000));
      const approval = await firstApproval('sess-intruder');
      await decide(approval.metadata.name, {
        approved: true,
        reason: 'trust me',
        approver: 'mallory',
        approverGroups: ['devs'],
      });
      await until('the unauthorised decision to be reported', async () =>
        seen.length > 0 ? true : undefined,
      );
      const decision = await pending;
      assert.equal(decision.approved, false, 'a non-reviewer’s approval is never obeyed');
      assert.equal(decision.timedOut, true);
      assert.equal(decision.approver, undefined, 'mallory is not recorded as the approver');
      assert.equal(
        decision.reason,
        'no decision within 4s; ignored the approval by mallory: mallory (groups: devs) is not a reviewer of SessionPolicy billing (users: alice; groups: dba)',
      );
      assert.equal(seen.length, 1, 'reported once, however many times the object is seen');
      assert.deepEqual(
        { ...seen[0], request: seen[0]!.request.sessionId },
        {
          request: 'sess-intruder',
          name: approval.metadata.name,
          approved: true,
          approver: 'mallory',
          approverGroups: ['devs'],
          reason: 'trust me',
          why: 'mallory (groups: devs) is not a reviewer of SessionPolicy billing (users: alice; groups: dba)',
        },
      );
      assert.equal(warnings.length, 1);
      assert.match(warnings[0]!, /sess-intruder-1: approval not obeyed: mallory .* is not a reviewer/);
    });

    it('does not obey a denial written by a non-reviewer either', async () => {
      const { backend, seen } = reviewedBackend();
      const pending = backend.request(request('sess-intruder-deny', 2500));
      const approval = await firstApproval('sess-intruder-deny');
      await decide(approval.metadata.name, { approved: false, approver: 'mallory' });
      const decision = await pending;
      assert.equal(decision.timedOut, true);
      assert.match(decision.reason ?? '', /ignored the denial by mallory: mallory is not a reviewer/);
      assert.equal(seen.length, 1);
    });

    it('obeys a reviewer named as a user, and one of a reviewer group', async () => {
      const { backend, seen } = reviewedBackend();
      const byUser = backend.request(request('sess-reviewer', 30_000));
      await decide((await firstApproval('sess-reviewer')).metadata.name, {
        approved: true,
        approver: 'alice',
      });
      assert.deepEqual(await byUser, { approved: true, approver: 'alice' });
      const byGroup = backend.request(request('sess-reviewer-group', 30_000));
      await decide((await firstApproval('sess-reviewer-group')).metadata.name, {
        approved: false,
        reason: 'no',
        approver: 'dave',
        approverGroups: ['system:authenticated', 'dba'],
      });
      assert.deepEqual(await byGroup, { approved: false, approver: 'dave', reason: 'no' });
      assert.deepEqual(seen, []);
    });
  });

  it('is cancelled by the session’s AbortSignal', async () => {
    const backend = createKubernetesApprovalBackend({ namespace: ns, kubeConfig: agentConfig });
    const controller = new AbortController();
    const pending = backend.request(request('sess-cancel', 30_000), controller.signal);
    await approvalsMade('approval created', 'sess-cancel', 1);
    controller.abort();
    const decision = await pending;
    assert.equal(decision.approved, false);
    assert.equal(decision.cancelled, true);
  });

  it('is cancelled when the session closes while the request is still being created', async () => {
    const backend = createKubernetesApprovalBackend({ namespace: ns, kubeConfig: agentConfig });
    const controller = new AbortController();
    const pending = backend.request(request('sess-cancel-early', 30_000), controller.signal);
    controller.abort(); // the create call is in flight: no abort event reaches the wait that follows
    const decision = await pending;
    assert.equal(decision.approved, false);
    assert.equal(decision.cancelled, true);
    assert.equal(decision.timedOut, undefined);
  });

  it('denies, naming the failure, when it cannot create the request', async () => {
    const backend = createKubernetesApprovalBackend({
      namespace: 'no-such-namespace-x',
      kubeConfig: agentConfig,
    });
    const decision = await backend.request(request('sess-fail', 5000));
    assert.equal(decision.approved, false);
    assert.match(decision.reason ?? '', /could not be created/);
  });
});
