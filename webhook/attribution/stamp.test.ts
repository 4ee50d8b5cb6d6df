// The launcher stamp rule: who may set chaperone.dev/launched-by to what.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { decodeLauncher, encodeLauncher, launcherOf } from './launcher.ts';
import { decideStamp, type StampInput } from './stamp.ts';

const alice = { username: 'alice', uid: 'u-1', groups: ['dev', 'system:authenticated'] };
const bob = { username: 'bob', groups: ['system:authenticated'] };
const controller = { username: 'system:serviceaccount:kube-system:job-controller' };
const aliceJob = encodeLauncher(
  launcherOf({ userInfo: alice, kind: 'Job', namespace: 'ns', name: 'nightly' }),
);

function input(over: Partial<StampInput> & { userInfo?: StampInput['req']['userInfo'] }): StampInput {
  return {
    req: { userInfo: over.userInfo ?? alice, kind: 'Job', namespace: 'ns', name: 'nightly' },
    operation: 'CREATE',
    current: undefined,
    previous: undefined,
    templateChanged: false,
    controlled: false,
    ...over,
  };
}

describe('launcher stamp', () => {
  it('stamps the creator of a workload, with uid, groups and extra', () => {
    const d = decideStamp(input({}));
    assert.deepEqual(d, { kind: 'set', value: aliceJob });
    const l = decodeLauncher(aliceJob);
    assert.ok(l && !(l instanceof Error));
    assert.equal(l.username, 'alice');
    assert.deepEqual(l.via, { kind: 'Job', namespace: 'ns', name: 'nightly' });
  });

  it('refuses a creator who writes someone else as launcher, or garbage', () => {
    const d = decideStamp(input({ userInfo: bob, current: aliceJob }));
    assert.equal(d.kind, 'deny');
    assert.match((d as { message: string }).message, /names someone else.*bob/);
    assert.equal(decideStamp(input({ current: 'not json' })).kind, 'deny');
  });

  it('re-stamps a copy of an object the creator made before', () => {
    const mine = encodeLauncher(launcherOf({ userInfo: alice, kind: 'Pod', namespace: 'ns', name: 'old' }));
    assert.deepEqual(decideStamp(input({ current: mine })), { kind: 'set', value: aliceJob });
  });

  it('keeps the stamp a controller copies from the template (Job -> Pod)', () => {
    const d = decideStamp(input({ userInfo: controller, current: aliceJob, controlled: true }));
    assert.deepEqual(d, { kind: 'set', value: aliceJob });
  });

  it('stamps a controller itself, marked unattributed, when the template carried nothing', () => {
    const d = decideStamp(input({ userInfo: controller, controlled: true }));
    assert.equal(d.kind, 'set');
    const l = decodeLauncher((d as { value: string }).value);
    assert.ok(l && !(l instanceof Error) && l.unattributed === true && l.username === controller.username);
  });

  it('a controller identity without an owner reference is stamped as itself', () => {
    const d = decideStamp(input({ userInfo: controller, current: aliceJob, controlled: false }));
    assert.equal(d.kind, 'deny');
  });

  it('an update that changes the template makes the updater the launcher', () => {
    const d = decideStamp(
      input({
        userInfo: bob,
        operation: 'UPDATE',
        previous: aliceJob,
        current: aliceJob,
        templateChanged: true,
      }),
    );
    assert.equal(d.kind, 'set');
    assert.equal((decodeLauncher((d as { value: string }).value) as { username: string }).username, 'bob');
  });

  it('an update that only scales keeps the launcher, and one that edits the stamp is refused', () => {
    assert.deepEqual(
      decideStamp(input({ userInfo: bob, operation: 'UPDATE', previous: aliceJob, current: aliceJob })),
      { kind: 'set', value: aliceJob },
    );
    assert.deepEqual(decideStamp(input({ userInfo: bob, operation: 'UPDATE', previous: aliceJob })), {
      kind: 'set',
      value: aliceJob,
    });
    const bobAsAlice = encodeLauncher(
      launcherOf({ userInfo: { username: 'carol' }, kind: 'Job', namespace: 'ns' }),
    );
    const d = decideStamp(
      input({ userInfo: bob, operation: 'UPDATE', previous: aliceJob, current: bobAsAlice }),
    );
    assert.equal(d.kind, 'deny');
    assert.match((d as { message: string }).message, /edited/);
  });
});
