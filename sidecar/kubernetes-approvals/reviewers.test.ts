import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { approvalsSchema } from '../../crds/index.ts';
import { unauthorisedBecause } from './reviewers.ts';

const context = { policy: 'billing', subject: 'system:serviceaccount:agents:bot' };
const reviewers = { users: ['alice'], groups: ['dba'] };

describe('unauthorisedBecause', () => {
  it('obeys a reviewer named as a user or through one of the groups the webhook stamped', () => {
    assert.equal(unauthorisedBecause({ approver: 'alice' }, reviewers, context), undefined);
    assert.equal(
      unauthorisedBecause(
        { approver: 'dave', approverGroups: ['system:authenticated', 'dba'] },
        reviewers,
        context,
      ),
      undefined,
    );
  });

  it('refuses anyone else, naming them and the reviewers', () => {
    assert.equal(
      unauthorisedBecause({ approver: 'mallory', approverGroups: ['devs'] }, reviewers, context),
      'mallory (groups: devs) is not a reviewer of SessionPolicy billing (users: alice; groups: dba)',
    );
    assert.equal(
      unauthorisedBecause({ approver: 'mallory' }, { users: [], groups: ['dba'] }, context),
      'mallory is not a reviewer of SessionPolicy billing (users: none; groups: dba)',
    );
    // A group name is not a user name, and the other way round.
    assert.match(unauthorisedBecause({ approver: 'dba' }, reviewers, context) ?? '', /not a reviewer/);
    assert.match(
      unauthorisedBecause({ approver: 'x', approverGroups: ['alice'] }, reviewers, context) ?? '',
      /not a reviewer/,
    );
  });

  it('refuses a decision without an approver when the policy names reviewers', () => {
    assert.equal(unauthorisedBecause({}, reviewers, context), 'the decision names no approver');
    assert.equal(unauthorisedBecause({ approver: '' }, reviewers, context), 'the decision names no approver');
  });

  it('leaves the choice to RBAC when the policy names no reviewers', () => {
    for (const none of [undefined, { users: [], groups: [] }]) {
      assert.equal(unauthorisedBecause({ approver: 'anyone' }, none, context), undefined);
      assert.equal(unauthorisedBecause({}, none, context), undefined);
    }
  });

  it('never obeys the agent deciding its own request, reviewer or not', () => {
    const self = { approver: context.subject };
    for (const list of [undefined, { users: [context.subject], groups: [] }]) {
      assert.equal(
        unauthorisedBecause(self, list, context),
        'system:serviceaccount:agents:bot cannot decide an approval requested by their own session',
      );
    }
  });

  it("never obeys the agent pod's service account, nor, unless named, another of its namespace", () => {
    const oidc = { policy: 'billing', subject: 'agent-alice', serviceAccount: 'bot', namespace: 'agents' };
    for (const list of [undefined, reviewers, { users: ['system:serviceaccount:agents:bot'], groups: [] }]) {
      assert.equal(
        unauthorisedBecause({ approver: 'system:serviceaccount:agents:bot' }, list, oidc),
        'system:serviceaccount:agents:bot cannot decide an approval requested by their own session',
      );
    }
    assert.match(
      unauthorisedBecause({ approver: 'system:serviceaccount:agents:other-agent' }, undefined, oidc) ?? '',
      /service account of namespace agents, where agents run/,
    );
    const named = { users: ['system:serviceaccount:agents:approver-bot'], groups: [] };
    assert.equal(
      unauthorisedBecause({ approver: 'system:serviceaccount:agents:approver-bot' }, named, oidc),
      undefined,
    );
    assert.equal(
      unauthorisedBecause({ approver: 'system:serviceaccount:ops:bot' }, undefined, oidc),
      undefined,
    );
    assert.equal(unauthorisedBecause({ approver: 'alice' }, undefined, oidc), undefined);
  });

  it('the policy schema refuses reviewer groups that hold the agents', () => {
    for (const group of ['system:authenticated', 'system:serviceaccounts', 'system:serviceaccounts:agents']) {
      const r = approvalsSchema.safeParse({ reviewers: { groups: [group] } });
      assert.equal(r.success, false, group);
    }
    assert.equal(
      approvalsSchema.safeParse({ reviewers: { groups: ['dba'], users: ['alice'] } }).success,
      true,
    );
    assert.equal(approvalsSchema.safeParse({ reviewers: { users: [''] } }).success, false);
  });
});
