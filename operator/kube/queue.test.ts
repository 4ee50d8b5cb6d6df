import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { WorkQueue } from './queue.ts';

describe('WorkQueue', () => {
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
    const queue = new WorkQueue(
      async () => {
        active += 1;
        runs += 1;
        maxActive = Math.max(maxActive, active);
        if (runs === 1) await gate;
        active -= 1;
      },
      { concurrency: 4 },
    );
    queue.start();
    queue.add('k');
    await sleep(10);
    queue.add('k');
    queue.add('k');
    release();
    await sleep(20);
    await queue.idle();
    assert.equal(maxActive, 1);
    assert.equal(runs, 2, 'two adds during the first run collapse into one re-run');
    await queue.stop();
  });

  it('retries failures with growing per-key backoff and forgets them after success', async () => {
    const attempts: number[] = [];
    const delays: number[] = [];
    const queue = new WorkQueue(
      async () => {
        attempts.push(Date.now());
        if (attempts.length < 4) throw new Error('boom');
      },
      { baseDelayMs: 10, maxDelayMs: 1000, onError: (_key, _error, delay) => delays.push(delay) },
    );
    queue.start();
    queue.add('x');
    while (attempts.length < 4) await sleep(5);
    assert.deepEqual(delays, [10, 20, 40]);
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
    while (runs < 3) await sleep(5);
    await sleep(30);
    assert.equal(runs, 3);
    await queue.stop();
  });
});
