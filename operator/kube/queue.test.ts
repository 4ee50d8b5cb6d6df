// The work queue, with time driven by the test (node:test's mock timers): each backoff and requeue
// is checked not to fire one millisecond early and to fire on time; no test waits on the wall clock.
import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, it, mock } from 'node:test';
import { WorkQueue } from './queue.ts';

/** Lets handlers that were started settle (they only await promises the test resolves). */
const settle = async (queue: WorkQueue) => {
  await queue.idle();
  await new Promise((resolve) => setImmediate(resolve));
};

describe('WorkQueue', () => {
  beforeEach(() => mock.timers.enable({ apis: ['setTimeout', 'Date'] }));
  afterEach(() => mock.timers.reset());

  it('de-duplicates queued keys', async () => {
    const seen: string[] = [];
    const queue = new WorkQueue(async (key) => {
      seen.push(key);
    });
    queue.add('a');
    queue.add('a');
    queue.add('b');
    queue.add('a');
    queue.start();
    await queue.idle();
    assert.deepEqual(seen.sort(), ['a', 'b']);
    await queue.stop();
  });

  it('never runs one key twice at once, and re-runs a key added while in flight', async () => {
    let active = 0;
    let maxActive = 0;
    let runs = 0;
    let release!: () => void;
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    let firstStarted!: () => void;
    const started = new Promise<void>((resolve) => {
      firstStarted = resolve;
    });
    const queue = new WorkQueue(
      async () => {
        active += 1;
        runs += 1;
        maxActive = Math.max(maxActive, active);
        if (runs === 1) {
          firstStarted();
          await gate;
        }
        active -= 1;
      },
      { concurrency: 4 },
    );
    queue.start();
    queue.add('k');
    await started;
    queue.add('k');
    queue.add('k');
    assert.equal(runs, 1, 'the adds while in flight do not start a second run');
    release();
    await queue.idle();
    assert.equal(maxActive, 1);
    assert.equal(runs, 2, 'two adds during the first run collapse into one re-run');
    await queue.stop();
  });

  it('retries failures with growing per-key backoff and forgets them after success', async () => {
    let attempts = 0;
    let failUntil = 4;
    const delays: number[] = [];
    const queue = new WorkQueue(
      async () => {
        attempts += 1;
        if (attempts < failUntil) throw new Error('boom');
      },
      { baseDelayMs: 10, maxDelayMs: 1000, onError: (_key, _error, delay) => delays.push(delay) },
    );
    queue.start();
    queue.add('x');
    await settle(queue);
    assert.equal(attempts, 1);
    for (const [i, delay] of [10, 20, 40].entries()) {
      mock.timers.tick(delay - 1);
      await settle(queue);
      assert.equal(attempts, i + 1, `retry ${i + 1} waits its full ${delay} ms`);
      mock.timers.tick(1);
      await settle(queue);
      assert.equal(attempts, i + 2, `retry ${i + 1} runs after ${delay} ms`);
    }
    assert.deepEqual(delays, [10, 20, 40]);
    // Success cleared the count: the next failure backs off from the base delay again.
    failUntil = 6;
    queue.add('x');
    await settle(queue);
    assert.equal(attempts, 5);
    assert.deepEqual(delays, [10, 20, 40, 10]);
    await queue.stop();
  });

  it('honours requeueAfterMs', async () => {
    let runs = 0;
    const queue = new WorkQueue(async () => {
      runs += 1;
      return runs < 3 ? { requeueAfterMs: 5 } : undefined;
    });
    queue.start();
    queue.add('r');
    await settle(queue);
    for (const expected of [2, 3]) {
      mock.timers.tick(4);
      await settle(queue);
      assert.equal(runs, expected - 1, 'not before requeueAfterMs');
      mock.timers.tick(1);
      await settle(queue);
      assert.equal(runs, expected, 'at requeueAfterMs');
    }
    // The third run asked for no requeue: however long we wait, nothing runs again.
    mock.timers.tick(60_000);
    await settle(queue);
    assert.equal(runs, 3);
    await queue.stop();
  });
});
