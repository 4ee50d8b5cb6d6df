import type { ApprovalDecision } from './types.ts';

export const CANCELLED: ApprovalDecision = Object.freeze({
  approved: false,
  cancelled: true,
  reason: 'session closed before a decision',
});

export function timedOut(timeoutMs: number): ApprovalDecision {
  return { approved: false, timedOut: true, reason: `no decision within ${Math.round(timeoutMs / 1000)}s` };
}

/**
 * Races `decision` against the timeout and the abort signal; `cleanup` runs once whichever wins.
 * A rejected `decision` becomes a denial naming the error.
 */
export function boundDecision(
  decision: Promise<ApprovalDecision>,
  timeoutMs: number,
  signal: AbortSignal | undefined,
  cleanup: (outcome: ApprovalDecision) => void,
): Promise<ApprovalDecision> {
  return new Promise((resolve) => {
    let done = false;
    const finish = (outcome: ApprovalDecision) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      try {
        cleanup(outcome);
      } finally {
        resolve(outcome);
      }
    };
    const onAbort = () => finish(CANCELLED);
    const timer = setTimeout(() => finish(timedOut(timeoutMs)), Math.max(0, timeoutMs));
    if (signal?.aborted) {
      finish(CANCELLED);
      return;
    }
    signal?.addEventListener('abort', onAbort, { once: true });
    decision.then(finish, (err: unknown) =>
      finish({
        approved: false,
        reason: `approval backend failed: ${err instanceof Error ? err.message : String(err)}`,
      }),
    );
  });
}
