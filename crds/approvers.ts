// Who may never decide a SessionApproval, whatever RBAC allows: one rule for the admission webhook
// (webhook/handlers/session-approvals.ts) and for the sidecar, which checks decisions again in case
// the webhook was not running (sidecar/kubernetes-approvals/reviewers.ts).
//
// The requesting session's identities are the agent's token subject and the pod's service account
// (the sidecar runs with it too, and the agent containers usually hold its token). Every other
// service account of the namespace belongs to a pod that may be an agent as well, so they may decide
// only when the policy names them as reviewers.

export interface Requester {
  /** The agent's identity as recorded (token subject or system:serviceaccount:ns:name). */
  subject: string;
  /** The agent pod's service account name, when known. */
  serviceAccount?: string | undefined;
  /** Namespace of the pod and of the SessionApproval. */
  namespace?: string | undefined;
}

/** Why `approver` may not decide this request, or undefined. */
export function selfDecisionBecause(
  approver: string,
  requester: Requester,
  reviewerUsers: readonly string[] = [],
): string | undefined {
  if (approver === '') return undefined;
  const own = [requester.subject];
  if (requester.serviceAccount && requester.namespace) {
    own.push(`system:serviceaccount:${requester.namespace}:${requester.serviceAccount}`);
  }
  if (own.includes(approver)) return `${approver} cannot decide an approval requested by their own session`;
  const siblings = requester.namespace ? `system:serviceaccount:${requester.namespace}:` : undefined;
  if (siblings && approver.startsWith(siblings) && !reviewerUsers.includes(approver)) {
    return `${approver} is a service account of namespace ${requester.namespace}, where agents run; it may decide only when the policy names it as a reviewer`;
  }
  return undefined;
}

/** Groups that hold agents too: naming one as reviewers would let an agent approve itself. */
export const AGENT_HOLDING_GROUPS: readonly string[] = [
  'system:authenticated',
  'system:unauthenticated',
  'system:serviceaccounts',
];

export function isAgentHoldingGroup(group: string): boolean {
  return AGENT_HOLDING_GROUPS.includes(group) || group.startsWith('system:serviceaccounts:');
}
