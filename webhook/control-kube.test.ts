// SessionApproval and SessionPolicy admission against a real kube-apiserver (RBAC on, users
// impersonated by the admin), and the serving certificate swapped live from its Secret.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { connect } from 'node:tls';
import type { V1Pod } from '@kubernetes/client-node';
import { testEnv } from '../test/env/index.ts';
import { CONTAINERS } from './constants.ts';
import { WebhookHarness } from './testing/harness.ts';
import { createTestCa, issueServingCert } from './testing/pki.ts';

const { kube } = await testEnv(['kube']);
const h = new WebhookHarness(kube);
let ns: string;

const basePolicy = {
  podSelector: { matchLabels: { app: 'agent' } },
  targets: [
    { name: 'db', protocol: 'postgres', upstream: { host: '10.213.0.2', port: 5432 }, listenPort: 15432 },
  ],
  recording: { store: { url: 's3://recordings/test' }, signingKeySecret: { name: 'signing-key' } },
};

function approval(name: string, policy: string, expiresAt = new Date(Date.now() + 3600_000).toISOString()) {
  return {
    apiVersion: 'chaperone.dev/v1alpha1',
    kind: 'SessionApproval',
    metadata: { name, namespace: ns },
    spec: {
      sessionId: name,
      policy,
      rule: 'drop-needs-approval',
      target: 'db',
      protocol: 'postgres',
      subject: `system:serviceaccount:${ns}:bot`,
      statement: 'DROP TABLE invoices',
      expiresAt,
    },
  };
}

/** kubectl patch of the decision as `user` (impersonated; groups added with --as-group). */
function decide(name: string, user: string, decision: object, groups: string[] = []) {
  return h.kubectl([
    'patch',
    'sessionapproval',
    name,
    '-n',
    ns,
    '--subresource=status',
    '--type=merge',
    '-p',
    JSON.stringify({ status: { decision } }),
    `--as=${user}`,
    ...groups.map((g) => `--as-group=${g}`),
    '-o',
    'json',
  ]);
}

describe('control-plane admission in kube-apiserver', () => {
  before(async () => {
    await h.start();
    ns = await h.recordedNamespace('approvals');
    await h.mustKubectl(['apply', '-f', '-'], {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'ClusterRole',
      metadata: { name: `chaperone-approver-${h.id}` },
      rules: [
        // get: kubectl patch --subresource=status reads the status subresource first.
        {
          apiGroups: ['chaperone.dev'],
          resources: ['sessionapprovals/status'],
          verbs: ['get', 'update', 'patch'],
        },
        { apiGroups: ['chaperone.dev'], resources: ['sessionapprovals'], verbs: ['get', 'list', 'watch'] },
      ],
    });
    await h.mustKubectl(['apply', '-f', '-'], {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'RoleBinding',
      metadata: { name: 'approvers', namespace: ns },
      roleRef: {
        apiGroup: 'rbac.authorization.k8s.io',
        kind: 'ClusterRole',
        name: `chaperone-approver-${h.id}`,
      },
      subjects: [
        { apiGroup: 'rbac.authorization.k8s.io', kind: 'User', name: 'alice' },
        { apiGroup: 'rbac.authorization.k8s.io', kind: 'User', name: 'carol' },
        { apiGroup: 'rbac.authorization.k8s.io', kind: 'Group', name: 'db-reviewers' },
        { kind: 'ServiceAccount', name: 'bot', namespace: ns },
      ],
    });
    await h.createPolicy(ns, 'open', basePolicy);
    await h.createPolicy(ns, 'reviewed', {
      ...basePolicy,
      podSelector: { matchLabels: { app: 'reviewed' } },
      approvals: { reviewers: { users: ['alice'], groups: ['db-reviewers'] } },
    });
  });
  after(async () => {
    await h.cleanup();
    await h.kubectl(['delete', 'clusterrole', `chaperone-approver-${h.id}`, '--ignore-not-found']);
  });

  describe('SessionApproval', () => {
    it('a user bound by RBAC approves; the recorded approver is the authenticated user, whatever was claimed', async () => {
      await h.mustKubectl(['create', '-f', '-'], approval('req-1', 'open'));
      const result = await decide('req-1', 'alice', {
        approved: true,
        reason: 'looks fine',
        approver: 'mallory',
        approverGroups: ['system:masters'],
      });
      assert.ok(result.ok, result.out);
      const stored = JSON.parse(result.out);
      assert.equal(stored.status.decision.approver, 'alice');
      assert.deepEqual(stored.status.decision.approverGroups, ['system:authenticated']);
      assert.match(stored.status.decision.decidedAt, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
      assert.equal(stored.status.decision.reason, 'looks fine');
      assert.equal(stored.status.phase, 'Approved');
    });

    it('a user without RBAC is refused by the apiserver (403)', async () => {
      await h.mustKubectl(['create', '-f', '-'], approval('req-2', 'open'));
      const result = await decide('req-2', 'bob', { approved: true });
      assert.equal(result.ok, false);
      assert.match(
        result.out,
        /Forbidden.*User "bob" cannot (get|patch) resource "sessionapprovals\/status"/s,
      );
    });

    it('a decision is final', async () => {
      const result = await decide('req-1', 'alice', { approved: false });
      assert.equal(result.ok, false);
      assert.match(result.out, /final/);
    });

    it('the request (spec) is immutable', async () => {
      const result = await h.kubectl([
        'patch',
        'sessionapproval',
        'req-2',
        '-n',
        ns,
        '--type=merge',
        '-p',
        '{"spec":{"statement":"SELECT 1"}}',
      ]);
      assert.equal(result.ok, false);
      assert.match(result.out, /spec is immutable/);
    });

    it('only the policy reviewers may decide when it names them (users or groups)', async () => {
      await h.mustKubectl(['create', '-f', '-'], approval('req-3', 'reviewed'));
      const carol = await decide('req-3', 'carol', { approved: true });
      assert.equal(carol.ok, false);
      assert.match(
        carol.out,
        /carol is not a reviewer of SessionPolicy reviewed \(users: alice; groups: db-reviewers\)/,
      );
      const dave = await decide('req-3', 'dave', { approved: false, reason: 'no' }, ['db-reviewers']);
      assert.ok(dave.ok, dave.out);
      const stored = JSON.parse(dave.out);
      assert.equal(stored.status.decision.approver, 'dave');
      assert.equal(stored.status.phase, 'Denied');
    });

    it('the agent cannot approve its own request, nor anyone an expired one', async () => {
      await h.mustKubectl(['create', '-f', '-'], approval('req-4', 'open'));
      const self = await decide('req-4', `system:serviceaccount:${ns}:bot`, { approved: true });
      assert.equal(self.ok, false);
      assert.match(self.out, /cannot decide an approval requested by their own session/);
      await h.mustKubectl(['create', '-f', '-'], approval('req-5', 'open', '2026-01-01T00:00:00Z'));
      const late = await decide('req-5', 'alice', { approved: true });
      assert.equal(late.ok, false);
      assert.match(late.out, /expired at 2026-01-01T00:00:00Z/);
    });

    it("with no reviewers, neither the agent pod's service account nor its namespace's others may decide", async () => {
      const req = approval('req-6', 'open');
      await h.mustKubectl(['create', '-f', '-'], {
        ...req,
        spec: { ...req.spec, subject: 'agent-alice', serviceAccount: 'bot' },
      });
      const pod = await decide('req-6', `system:serviceaccount:${ns}:bot`, { approved: true });
      assert.equal(pod.ok, false);
      assert.match(pod.out, /cannot decide an approval requested by their own session/);
      // RBAC lets it (through a group); the rule does not.
      const sibling = await decide('req-6', `system:serviceaccount:${ns}:other-agent`, { approved: true }, [
        'db-reviewers',
      ]);
      assert.equal(sibling.ok, false);
      assert.match(sibling.out, /service account of namespace .* where agents run/);
      const alice = await decide('req-6', 'alice', { approved: true });
      assert.ok(alice.ok, alice.out);
    });
  });

  describe('SessionPolicy', () => {
    const policy = (name: string, spec: object) => ({
      apiVersion: 'chaperone.dev/v1alpha1',
      kind: 'SessionPolicy',
      metadata: { name, namespace: ns },
      spec,
    });

    it('refuses guardrails naming unknown targets and listen ports on the admin port', async () => {
      const result = await h.kubectl(
        ['create', '-f', '-'],
        policy('bad-refs', {
          ...basePolicy,
          targets: [{ ...basePolicy.targets[0], listenPort: 15090 }],
          guardrails: [
            { name: 'no-drop', targets: ['warehouse'], match: { sqlClasses: ['drop'] }, action: 'block' },
          ],
        }),
      );
      assert.equal(result.ok, false);
      assert.match(result.out, /denied the request: chaperone: SessionPolicy bad-refs is invalid/);
      assert.match(
        result.out,
        /spec\.guardrails\[0\] \(no-drop\): targets warehouse not found among spec\.targets \(db\)/,
      );
      assert.match(result.out, /spec\.targets\[0\] \(db\): listenPort 15090 is the sidecar's admin port/);
    });

    it('refuses patterns RE2 cannot run', async () => {
      const result = await h.kubectl(
        ['create', '-f', '-'],
        policy('bad-re', {
          ...basePolicy,
          guardrails: [{ name: 'r', match: { sqlPattern: '(a)\\1' }, action: 'block' }],
        }),
      );
      assert.equal(result.ok, false);
      assert.match(
        result.out,
        /spec\.guardrails\[0\]\.match\.sqlPattern: must be a valid RE2 regular expression/,
      );
    });

    it('warns about Secrets that do not exist (yet)', async () => {
      await h.createSecret(ns, 'signing-key', { privateKey: 'x' });
      const result = await h.kubectl(
        ['create', '-f', '-'],
        policy('warned', {
          ...basePolicy,
          targets: [{ ...basePolicy.targets[0], credentialsSecret: { name: 'db-creds' } }],
        }),
      );
      assert.ok(result.ok, result.out);
      assert.match(
        result.out,
        /Warning: spec\.targets\[0\]\.credentialsSecret: Secret db-creds does not exist in namespace approvals-\w+ yet/,
      );
      assert.doesNotMatch(result.out, /signingKeySecret/);
    });
  });

  it('swaps the serving certificate live when its Secret changes', async () => {
    const fingerprint = () =>
      new Promise<string>((resolve, reject) => {
        const socket = connect(
          { host: '127.0.0.1', port: Number(new URL(h.baseUrl).port), rejectUnauthorized: false },
          () => {
            resolve(socket.getPeerCertificate().fingerprint256.replaceAll(':', '').toLowerCase());
            socket.end();
          },
        );
        socket.on('error', reject);
      });
    assert.equal(await fingerprint(), h.serving.fingerprint);
    const ca = await createTestCa('rotated-ca');
    const serving = await issueServingCert(ca);
    await h.putTlsSecret(serving, ca);
    const deadline = Date.now() + 20_000;
    while ((await fingerprint()) !== serving.fingerprint) {
      assert.ok(Date.now() < deadline, 'the webhook kept serving the old certificate');
      await new Promise((r) => setTimeout(r, 100));
    }
    // The apiserver trusts the new CA once the configurations carry it (the operator patches caBundle).
    await h.registerConfigurations(ca.certPem);
    const rotated = await h.recordedNamespace('rotated');
    await h.createPolicy(rotated, 'open', basePolicy);
    const probe: V1Pod = {
      metadata: { name: 'after-rotation', labels: { app: 'agent' } },
      spec: { securityContext: { runAsUser: 1000 }, containers: [{ name: 'agent', image: 'x' }] },
    };
    await h.waitUntilActive(rotated, probe);
    const pod = await h.createPod(rotated, probe);
    assert.ok(pod.spec?.initContainers?.some((c) => c.name === CONTAINERS.sidecar));
  });
});
