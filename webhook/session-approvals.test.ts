import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { stampDecision } from './handlers/session-approvals.ts';

describe('stampDecision', () => {
  const now = new Date('2026-11-23T10:11:12.345Z');
  const user = { username: 'alice', groups: ['ops', 'system:authenticated'] };

  it('overwrites whatever approver the client claimed and sets the phase', () => {
    const stamped = stampDecision(
      {
        status: {
          decision: {
            approved: false,
            approver: 'mallory',
            approverGroups: ['system:masters'],
            decidedAt: '2000-01-01T00:00:00Z',
          },
        },
      },
      { status: {} },
      user,
      now,
    );
    assert.deepEqual(stamped.status, {
      phase: 'Denied',
      decision: {
        approved: false,
        approver: 'alice',
        approverGroups: ['ops', 'system:authenticated'],
        decidedAt: '2026-11-23T10:11:12Z',
      },
    });
  });

  it('leaves an existing decision to the validating webhook', () => {
    const object = { status: { decision: { approved: false } } };
    assert.equal(
      stampDecision(object, { status: { decision: { approved: true, approver: 'bob' } } }, user, now),
      object,
    );
  });
});
