// The plugin's pure parts: request states, the table that fits the terminal, watch lines, and the
// pod a workload manifest stands for.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { programName } from '../release/entries/dispatch.ts';
import {
  type Approval,
  approvalsTable,
  fitTable,
  pendingOf,
  shortDuration,
  stateOf,
  watchLine,
} from './approvals.ts';
import { injectedInto, podFromManifest } from './policy-check.ts';

const now = Date.parse('2026-11-29T22:00:00Z');
function approval(name: string, overrides: Partial<Approval> = {}, expiresInS = 60): Approval {
  return {
    metadata: { name, namespace: 'agents', creationTimestamp: '2026-11-29T21:59:30Z' },
    spec: {
      sessionId: '019ad2f1-8c4e-7b7a-9f0e-4f7c2d1e0a9b',
      policy: 'orders',
      rule: 'approve-truncate',
      target: 'orders-db',
      protocol: 'postgres',
      subject: 'system:serviceaccount:agents:report-agent',
      pod: 'agent-0',
      statement: 'TRUNCATE\n   orders_archive',
      expiresAt: new Date(now + expiresInS * 1000).toISOString(),
    },
    ...overrides,
  };
}

describe('kubectl chaperone output', () => {
  it('a request is pending until decided, marked Expired or past expiresAt', () => {
    assert.equal(stateOf(approval('a'), now), 'pending');
    assert.equal(stateOf(approval('a', {}, -1), now), 'expired');
    assert.equal(stateOf(approval('a', { status: { phase: 'Expired' } }), now), 'expired');
    assert.equal(stateOf(approval('a', { status: { decision: { approved: true } } }), now), 'approved');
    assert.equal(stateOf(approval('a', { status: { decision: { approved: false } } }), now), 'denied');
    assert.deepEqual(
      pendingOf([approval('late', {}, 90), approval('gone', {}, -5), approval('soon', {}, 10)], now).map(
        (a) => a.metadata.name,
      ),
      ['soon', 'late'],
    );
  });

  it('durations read like kubectl ages', () => {
    assert.deepEqual([5_000, 119_000, 600_000, 7_200_000, 200_000_000].map(shortDuration), [
      '5s',
      '119s',
      '10m',
      '2h',
      '2d',
    ]);
  });

  it('the table fits the width, cutting the statement first, never below its minimum', () => {
    const wide = approvalsTable([approval('req-1')], undefined, now);
    const [header, row] = wide.split('\n');
    assert.match(header!, /^NAMESPACE +NAME +SUBJECT +SESSION +POD +TARGET +RULE +AGE +LEFT +STATEMENT$/);
    assert.match(row!, /agent-0 +orders-db +approve-truncate +30s +60s +TRUNCATE orders_archive$/);
    for (const width of [160, 120]) {
      const fitted = approvalsTable(
        [approval('req-1', { spec: { ...approval('x').spec, statement: 'x'.repeat(300) } })],
        width,
        now,
      );
      for (const line of fitted.split('\n'))
        assert.ok(line.length <= width, `${line.length} > ${width}: ${line}`);
      assert.match(fitted, /x…$/m);
    }
    assert.equal(
      fitTable(['A', 'B'], [['aaaa', 'bbbbbbbb']], 8, [{ column: 1, min: 3 }]),
      'A     B\naaaa  bb…',
    );
  });

  it('a watch line has the state first and ends with the commands', () => {
    const line = watchLine(approval('req-1'), now);
    assert.equal(
      line,
      '2026-11-29T22:00:00Z PENDING agents/req-1: system:serviceaccount:agents:report-agent asks to run "TRUNCATE orders_archive" on orders-db (rule approve-truncate, session 019ad2f1-8c4e-7b7a-9f0e-4f7c2d1e0a9b, pod agent-0, 60s left) | kubectl chaperone approve req-1 -n agents | kubectl chaperone deny req-1 -n agents',
    );
    assert.equal(
      watchLine(
        approval('req-1', { status: { decision: { approved: false, approver: 'bob', reason: 'no' } } }),
        now,
      ),
      '2026-11-29T22:00:00Z DENIED agents/req-1 by bob: no',
    );
  });

  it('a workload is checked through its pod template; injection is what admission added', () => {
    const pod = podFromManifest({
      apiVersion: 'batch/v1',
      kind: 'CronJob',
      metadata: { name: 'nightly', namespace: 'agents' },
      spec: {
        jobTemplate: {
          spec: { template: { metadata: { labels: { app: 'a' } }, spec: { containers: [{ name: 'c' }] } } },
        },
      },
    });
    assert.deepEqual(pod.metadata, { labels: { app: 'a' }, generateName: 'nightly-', namespace: 'agents' });
    assert.throws(() => podFromManifest({ kind: 'ConfigMap' }), /a ConfigMap has no pod template/);
    const before = { spec: { containers: [{ name: 'c', env: [{ name: 'A' }] }], volumes: [{ name: 'v' }] } };
    const after = {
      spec: {
        initContainers: [{ name: 'chaperone', image: 'img' }],
        containers: [{ name: 'c', env: [{ name: 'A' }, { name: 'PGHOST' }] }],
        volumes: [{ name: 'v' }, { name: 'spool' }],
      },
    };
    assert.deepEqual(injectedInto(before, after), {
      initContainers: [{ name: 'chaperone', image: 'img' }],
      containers: [],
      volumes: ['spool'],
      env: { c: ['PGHOST'] },
    });
  });

  it('the single executable is the plugin when named kubectl-chaperone', () => {
    assert.equal(programName('/usr/local/bin/kubectl-chaperone', undefined), 'kubectl-chaperone');
    assert.equal(programName('/usr/local/bin/chaperone-linux-x64', undefined), 'chaperone');
    assert.equal(programName('node', '/x/kubectl-chaperone'), 'kubectl-chaperone');
  });
});
