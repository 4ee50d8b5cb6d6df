// What the operator renders for a SessionPolicy (the ConfigMap holding the sidecar's configuration:
// targets, guardrails, masking; the NetworkPolicy) is written by the operator only. A user who may
// write ConfigMaps in an opted-in namespace could otherwise change the guardrails of every pod that
// starts before the operator writes them back. The webhook configuration sends only objects labelled
// as the operator's (objectSelector), old or new, so removing the label is an update it sees.
import type { AdmissionRequest, Decision } from '../admission.ts';
import { allow, deny } from '../admission.ts';
import type { WebhookConfig } from '../config.ts';

/** Controllers that delete the operator's children with their policy or namespace. */
const GARBAGE_COLLECTORS = [
  'system:serviceaccount:kube-system:generic-garbage-collector',
  'system:serviceaccount:kube-system:namespace-controller',
];

/** Cluster administrators are out of the threat model (docs/security.md): they may repair by hand. */
const ADMIN_GROUP = 'system:masters';

export function operatorUsers(config: WebhookConfig): string[] {
  return config.operatorUsers.length > 0
    ? config.operatorUsers
    : [`system:serviceaccount:${config.systemNamespace}:chaperone-operator`];
}

export function validateOperatorChild(req: AdmissionRequest, config: WebhookConfig): Decision {
  const user = req.userInfo.username ?? '';
  if (operatorUsers(config).includes(user) || GARBAGE_COLLECTORS.includes(user)) return allow();
  if ((req.userInfo.groups ?? []).includes(ADMIN_GROUP)) return allow();
  const kind = req.kind.kind;
  const name = req.name ?? (req.object as { metadata?: { name?: string } } | undefined)?.metadata?.name ?? '';
  return deny(
    `chaperone: [operator-owned] ${kind} ${name} is written by the chaperone operator only (it carries the configuration SessionPolicies give their sidecars); ${req.operation} by ${user || 'an anonymous user'} refused`,
  );
}
