// Approval alerts carry the kubectl commands that decide them (Kubernetes approval backend only).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { reviewCommands, slackPayload, withApprovalReview } from './index.ts';
import type { Alert, AlertSink } from './types.ts';

const awaiting: Alert = {
  kind: 'approval',
  sessionId: '01a2-b3',
  subject: 'system:serviceaccount:agents:bot',
  target: 'orders-db',
  rule: 'approve-truncate',
  statement: 'TRUNCATE orders',
  message: 'statement awaits approval under rule approve-truncate',
};

function recording(): { sink: AlertSink; sent: Alert[] } {
  const sent: Alert[] = [];
  return { sent, sink: { send: (a) => sent.push(a), close: async () => undefined } };
}

describe('approval alerts a reviewer can act on', () => {
  it('name the request by object name when known, else by session', () => {
    assert.deepEqual(reviewCommands({ namespace: 'agents', name: 'sess-1' }, 'x'), [
      'kubectl chaperone approve sess-1 -n agents',
      'kubectl chaperone deny sess-1 -n agents',
    ]);
    assert.deepEqual(reviewCommands({ namespace: 'agents' }, '01a2-b3'), [
      'kubectl chaperone approve --session 01a2-b3 -n agents',
      'kubectl chaperone deny --session 01a2-b3 -n agents',
    ]);
    assert.equal(reviewCommands({ namespace: 'agents' }, undefined), undefined);
  });

  it('the Slack payload carries the commands in text and blocks, next to what is asked', () => {
    const payload = slackPayload({ ...awaiting, review: { namespace: 'agents' } });
    assert.match(payload.text, /TRUNCATE|approve-truncate/);
    assert.match(
      payload.text,
      /decide with: kubectl chaperone approve --session 01a2-b3 -n agents \| kubectl chaperone deny --session 01a2-b3 -n agents$/,
    );
    const blocks = JSON.stringify(payload.blocks);
    assert.ok(blocks.includes('`kubectl chaperone approve --session 01a2-b3 -n agents`'));
    assert.ok(blocks.includes('TRUNCATE orders'));
    assert.doesNotMatch(slackPayload(awaiting).text, /kubectl chaperone/, 'no review: no commands');
  });

  it('withApprovalReview adds the namespace to approval alerts only, and only with a namespace', () => {
    const { sink, sent } = recording();
    const wrapped = withApprovalReview(sink, 'agents');
    wrapped.send(awaiting);
    wrapped.send({ ...awaiting, kind: 'blocked' });
    wrapped.send({ ...awaiting, review: { namespace: 'other', name: 'n-1' } });
    assert.deepEqual(
      sent.map((a) => a.review),
      [{ namespace: 'agents' }, undefined, { namespace: 'other', name: 'n-1' }],
    );
    assert.equal(withApprovalReview(sink, undefined), sink);
  });
});
