// SessionApproval decisions: the approver is whoever the apiserver authenticated (stamped by the
// mutating webhook, whatever the client wrote), decisions are final, the request is immutable, and
// only the policy's reviewers (when it names any) may decide.
import { isDeepStrictEqual } from 'node:util';
import { type ApprovalDecision, type SessionApprovalSpec, selfDecisionBecause } from '../../crds/index.ts';
import type { AdmissionRequest, Decision, UserInfo } from '../admission.ts';
import { allow, deny } from '../admission.ts';
import type { ClusterReader } from '../cluster.ts';
import { renderPodPatch } from '../inject.ts';
import { resolvePolicy } from '../policy.ts';

interface RawApproval {
  metadata?: { name?: string; namespace?: string };
  spec?: SessionApprovalSpec;
  status?: { phase?: string; decision?: ApprovalDecision; [k: string]: unknown };
  [k: string]: unknown;
}

const PREFIX = 'chaperone: ';

/** Second precision, as Kubernetes timestamps. */
function timestamp(date: Date): string {
  return `${date.toISOString().slice(0, 19)}Z`;
}

export function stampDecision(
  object: RawApproval,
  old: RawApproval | undefined,
  user: UserInfo,
  now: Date,
): RawApproval {
  const decision = object.status?.decision;
  if (!decision || old?.status?.decision) return object;
  const stamped = structuredClone(object);
  stamped.status!.decision = {
    ...decision,
    approver: user.username ?? '',
    approverGroups: [...(user.groups ?? [])],
    decidedAt: timestamp(now),
  };
  stamped.status!.phase = decision.approved ? 'Approved' : 'Denied';
  return stamped;
}

export function mutateSessionApproval(req: AdmissionRequest, now: () => Date): Decision {
  if (req.operation !== 'UPDATE' || req.subResource !== 'status') return allow();
  const object = req.object as RawApproval;
  const stamped = stampDecision(object, req.oldObject as RawApproval | undefined, req.userInfo, now());
  return { allowed: true, patch: renderPodPatch(object, stamped) };
}

export async function validateSessionApproval(
  req: AdmissionRequest,
  deps: { cluster: ClusterReader; now: () => Date },
): Promise<Decision> {
  if (req.operation !== 'UPDATE') return allow();
  const object = req.object as RawApproval;
  const old = req.oldObject as RawApproval;
  const name = object.metadata?.name ?? '';
  if (!isDeepStrictEqual(object.spec, old.spec)) {
    return deny(`${PREFIX}SessionApproval ${name}: spec is immutable (it is the request being decided)`);
  }
  const before = old.status?.decision;
  const after = object.status?.decision;
  if (before) {
    if (!isDeepStrictEqual(before, after)) {
      return deny(
        `${PREFIX}SessionApproval ${name} was already ${before.approved ? 'approved' : 'denied'} by ${before.approver ?? 'unknown'}; a decision is final`,
      );
    }
    return allow();
  }
  if (!after) return allow();

  const user = req.userInfo.username ?? '';
  const spec = object.spec!;
  if (after.approver !== user) {
    return deny(
      `${PREFIX}decision.approver must be the requesting user ${user} (stamped by the chaperone mutating webhook)`,
    );
  }
  const namespace = req.namespace ?? object.metadata?.namespace ?? '';
  const stored = await deps.cluster.getSessionPolicy(namespace, spec.policy);
  const reviewerUsers = stored
    ? (resolvePolicy(stored, namespace).spec.approvals.reviewers?.users ?? [])
    : [];
  const self = selfDecisionBecause(
    user,
    { subject: spec.subject, serviceAccount: spec.serviceAccount, namespace },
    reviewerUsers,
  );
  if (self !== undefined) return deny(`${PREFIX}${self}`);
  const expires = Date.parse(spec.expiresAt);
  if (!Number.isNaN(expires) && deps.now().getTime() > expires) {
    return deny(
      `${PREFIX}SessionApproval ${name} expired at ${spec.expiresAt}; the session has already been refused`,
    );
  }
  if (!stored) {
    return deny(
      `${PREFIX}SessionPolicy ${spec.policy} (named by this request) does not exist in ${namespace}; cannot check its reviewers`,
    );
  }
  const reviewers = resolvePolicy(stored, namespace).spec.approvals.reviewers;
  if (reviewers && (reviewers.users.length > 0 || reviewers.groups.length > 0)) {
    const groups = req.userInfo.groups ?? [];
    if (!reviewers.users.includes(user) && !groups.some((g) => reviewers.groups.includes(g))) {
      return deny(
        `${PREFIX}${user} is not a reviewer of SessionPolicy ${spec.policy} (users: ${reviewers.users.join(', ') || 'none'}; groups: ${reviewers.groups.join(', ') || 'none'})`,
      );
    }
  }
  return allow();
}
