// Who may decide a SessionApproval, checked again by the sidecar: the admission webhook refuses a
// decision by anyone else, but when it is not running (failurePolicy Ignore, an outage, a cluster
// where it was never installed) nothing else stops a user with RBAC on sessionapprovals/status.
// Same rules as webhook/handlers/session-approvals.ts, applied to what the decision records.
import { selfDecisionBecause } from '../../crds/index.ts';

/** SessionPolicy spec.approvals.reviewers; empty lists (or none) leave the choice to RBAC. */
export interface Reviewers {
  users: readonly string[];
  groups: readonly string[];
}

/** The parts of status.decision the check reads (approver and groups as the webhook stamps them). */
export interface RecordedDecision {
  approver?: string | undefined;
  approverGroups?: readonly string[] | undefined;
}

/** Why the decision may not be obeyed, or undefined when its approver may decide. */
export function unauthorisedBecause(
  decision: RecordedDecision,
  reviewers: Reviewers | undefined,
  context: {
    policy: string;
    subject: string;
    serviceAccount?: string | undefined;
    namespace?: string | undefined;
  },
): string | undefined {
  const approver = decision.approver ?? '';
  const self = selfDecisionBecause(approver, context, reviewers?.users);
  if (self !== undefined) return self;
  if (!reviewers || (reviewers.users.length === 0 && reviewers.groups.length === 0)) return undefined;
  if (approver === '') return 'the decision names no approver';
  if (reviewers.users.includes(approver)) return undefined;
  const groups = decision.approverGroups ?? [];
  if (groups.some((g) => reviewers.groups.includes(g))) return undefined;
  const shownGroups = groups.length > 0 ? ` (groups: ${groups.join(', ')})` : '';
  return `${approver}${shownGroups} is not a reviewer of SessionPolicy ${context.policy} (users: ${reviewers.users.join(', ') || 'none'}; groups: ${reviewers.groups.join(', ') || 'none'})`;
}
