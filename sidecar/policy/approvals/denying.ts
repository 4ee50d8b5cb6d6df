import type { ApprovalBackend } from './types.ts';

/** Backend `none`: requireApproval rules deny at once, since nobody could approve. */
export function createDenyingApprovalBackend(): ApprovalBackend {
  return {
    async request() {
      return { approved: false, reason: 'approvals are not configured for this policy (backend none)' };
    },
  };
}
