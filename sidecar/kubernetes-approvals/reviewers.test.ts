import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
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
});
