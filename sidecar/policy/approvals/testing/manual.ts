// An in-memory backend decided by code: for tests of everything that waits for approvals.
import { randomUUID } from 'node:crypto';
import type { ApprovalBackend, ApprovalDecision, ApprovalRequest } from '../types.ts';
import { boundDecision } from '../wait.ts';

export interface PendingApproval extends ApprovalRequest {
  id: string;
}

export interface ManualApprovalBackend extends ApprovalBackend {
  /** Decides a pending request; false when no such request is waiting. */
  decide(id: string, decision: ApprovalDecision): boolean;
  /** Requests waiting now, oldest first. */
  pending(): PendingApproval[];
  /** The oldest request not yet handed out by this method, waiting for one if needed. */
  nextRequest(): Promise<PendingApproval>;
}

export function createManualApprovalBackend(): ManualApprovalBackend {
  const waiting = new Map<string, { req: PendingApproval; resolve: (d: ApprovalDecision) => void }>();
  const unseen: PendingApproval[] = [];
  const watchers: ((req: PendingApproval) => void)[] = [];
  return {
    request(req, signal) {
      const id = randomUUID();
      const pending: PendingApproval = { ...req, id };
      const decision = new Promise<ApprovalDecision>((resolve) => waiting.set(id, { req: pending, resolve }));
      const watcher = watchers.shift();
      if (watcher) watcher(pending);
      else unseen.push(pending);
      return boundDecision(decision, req.timeoutMs, signal, () => {
        waiting.delete(id);
        const i = unseen.indexOf(pending);
        if (i >= 0) unseen.splice(i, 1);
      });
    },
    decide(id, decision) {
      const entry = waiting.get(id);
      if (!entry) return false;
      entry.resolve({ ...decision });
      return true;
    },
    pending() {
      return [...waiting.values()].map((w) => w.req);
    },
    nextRequest() {
      const first = unseen.shift();
      if (first) return Promise.resolve(first);
      return new Promise((resolve) => watchers.push(resolve));
    },
  };
}
