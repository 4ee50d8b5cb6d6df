import type { Protocol } from '../../../crds/index.ts';

/** One statement (or command) waiting for a reviewer, as the policy engine asks for it. */
export interface ApprovalRequest {
  sessionId: string;
  policy: string;
  rule: string;
  target: string;
  protocol: Protocol;
  subject: string;
  pod?: string;
  /** The agent pod's service account name: it may never decide the request. */
  serviceAccount?: string;
  statement: string;
  /** How long the statement may wait; after that it is denied with timedOut. */
  timeoutMs: number;
}

export interface ApprovalDecision {
  approved: boolean;
  approver?: string;
  reason?: string;
  /** No decision arrived within timeoutMs. */
  timedOut?: boolean;
  /** The session ended (AbortSignal) before a decision; nothing runs. */
  cancelled?: boolean;
  /** Decisions seen but not obeyed (written by someone who may not decide), for the recording. */
  ignored?: IgnoredDecision[];
}

export interface IgnoredDecision {
  approved: boolean;
  approver?: string;
  approverGroups?: string[];
  reason?: string;
  /** Why it was not obeyed. */
  why: string;
}

/**
 * Resolves with a decision; never rejects (a broken backend denies, so failures fail closed).
 * `signal` aborts the wait when the agent's session closes.
 */
export interface ApprovalBackend {
  request(req: ApprovalRequest, signal?: AbortSignal): Promise<ApprovalDecision>;
}
