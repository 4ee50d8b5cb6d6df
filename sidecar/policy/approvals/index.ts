import type { SidecarConfig } from '../../config/index.ts';
import { createDenyingApprovalBackend } from './denying.ts';
import { createLocalApprovalBackend } from './local.ts';
import type { ApprovalBackend } from './types.ts';

export { createDenyingApprovalBackend } from './denying.ts';
export {
  createLocalApprovalBackend,
  decideLocalApproval,
  type LocalApprovalOptions,
  type LocalApprovalRequestFile,
  type LocalDecision,
  listPendingLocalApprovals,
  localDecisionSchema,
} from './local.ts';
export type { ApprovalBackend, ApprovalDecision, ApprovalRequest, IgnoredDecision } from './types.ts';

/**
 * The backend the config names. `kubernetes` (SessionApproval objects) is provided by the control
 * plane code and passed in, so this folder does not depend on the Kubernetes client.
 */
export function createApprovalBackend(
  approvals: SidecarConfig['approvals'],
  factories: { kubernetes?: () => ApprovalBackend } = {},
): ApprovalBackend {
  switch (approvals.backend) {
    case 'none':
      return createDenyingApprovalBackend();
    case 'local':
      if (!approvals.localDir)
        throw new Error('approvals.backend is local but approvals.localDir is not set');
      return createLocalApprovalBackend(approvals.localDir);
    case 'kubernetes':
      if (!factories.kubernetes)
        throw new Error('approvals.backend kubernetes needs the SessionApproval backend');
      return factories.kubernetes();
  }
}
