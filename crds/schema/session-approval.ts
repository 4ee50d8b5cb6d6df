// SessionApproval: one just-in-time approval request, created by the sidecar, decided by a reviewer.
// The spec (the request) is immutable; the decision lives in status, written through the status
// subresource so RBAC on sessionapprovals/status decides who may decide, and the approver is stamped
// from the admission request's userInfo by the webhook.
import { z } from 'zod';
import { conditionSchema, protocolSchema } from './common.ts';

export const sessionApprovalSpecSchema = z
  .object({
    sessionId: z.string().min(1).describe('The recorded session waiting for the decision.'),
    policy: z.string().min(1).describe('SessionPolicy whose rule asked for approval.'),
    rule: z.string().min(1).describe('Guardrail rule name.'),
    target: z.string().min(1).describe('SessionPolicy target the session is connected to.'),
    protocol: protocolSchema,
    subject: z.string().describe('Identity of the agent (token subject or service account).'),
    pod: z.string().optional().describe('Pod of the agent.'),
    serviceAccount: z
      .string()
      .optional()
      .describe(
        "The agent pod's service account: it never decides this request (nor do the namespace's others unless named reviewers).",
      ),
    statement: z.string().max(65536).describe('The SQL statement, command or request awaiting approval.'),
    expiresAt: z.string().describe('RFC 3339 time after which the request counts as denied.'),
  })
  .describe('A request for a just-in-time approval. Immutable once created.')
  .meta({
    'x-kubernetes-validations': [
      {
        rule: 'self == oldSelf',
        message: 'spec is immutable: an approval request cannot change once created',
      },
    ],
  });
export type SessionApprovalSpec = z.infer<typeof sessionApprovalSpecSchema>;

export const approvalDecisionSchema = z
  .object({
    approved: z.boolean().describe('true approves the request; false denies it.'),
    reason: z.string().max(1024).optional(),
    approver: z
      .string()
      .optional()
      .describe(
        'Stamped by the admission webhook from the authenticated user; never trusted from the client.',
      ),
    approverGroups: z
      .array(z.string().max(253))
      .max(1024)
      .optional()
      .describe('Groups of the approver, stamped by the admission webhook.'),
    decidedAt: z
      .string()
      .optional()
      .describe('RFC 3339 time of the decision, stamped by the admission webhook.'),
  })
  .describe(
    'Written through the status subresource by a reviewer (RBAC: update on sessionapprovals/status); final once set.',
  );
export type ApprovalDecision = z.infer<typeof approvalDecisionSchema>;

export const sessionApprovalStatusSchema = z
  .object({
    phase: z
      .enum(['Pending', 'Approved', 'Denied', 'Expired'])
      .optional()
      .describe(
        'Approved or Denied once decided (set with the decision); Expired when nobody decided in time.',
      ),
    decision: approvalDecisionSchema.optional(),
    conditions: z
      .array(conditionSchema)
      .optional()
      .meta({ 'x-kubernetes-list-type': 'map', 'x-kubernetes-list-map-keys': ['type'] }),
  })
  .describe('The decision, written through the status subresource.')
  .meta({
    'x-kubernetes-validations': [
      {
        rule: '!has(oldSelf.decision) || (has(self.decision) && self.decision == oldSelf.decision)',
        message: 'status.decision is final once set',
      },
      {
        rule: '!has(self.decision) || has(self.decision.approver)',
        message: 'status.decision.approver must be stamped by the chaperone admission webhook',
      },
    ],
  });

export const SESSION_APPROVAL = {
  group: 'chaperone.dev',
  version: 'v1alpha1',
  kind: 'SessionApproval',
  plural: 'sessionapprovals',
  singular: 'sessionapproval',
  shortNames: ['sapp'],
} as const;
