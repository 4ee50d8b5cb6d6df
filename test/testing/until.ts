// The one poller of the suite: wait for a condition itself, never for a fixed time. The sleep
// between looks is the only sleep tests may use (the sleep check in no-fixed-sleep.test.ts allows
// it here and nowhere else in test code).
import { setTimeout as sleep } from 'node:timers/promises';

export interface UntilOptions {
  /** Give up after this long (a failure naming `what`, with the last error seen). */
  timeoutMs?: number;
  /** Time between two looks. */
  intervalMs?: number;
}

type Check<T> = () => Promise<T | undefined | null | false> | T | undefined | null | false;

/**
 * Polls `check` until it returns a truthy value and returns that value. A check that throws counts
 * as "not yet"; after `timeoutMs` the wait fails with `what` and the last error.
 */
export async function until<T>(
  what: string,
  check: Check<T>,
  { timeoutMs = 30_000, intervalMs = 20 }: UntilOptions = {},
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value) return value;
      lastError = undefined;
    } catch (error) {
      lastError = error;
    }
    if (Date.now() > deadline) {
      const why = lastError ? `: ${lastError instanceof Error ? lastError.message : String(lastError)}` : '';
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${why}`);
    }
    await sleep(intervalMs);
  }
}

/** Resolves after every callback queued so far by setImmediate (and the microtasks before them) ran. */
export function nextTurn(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}
