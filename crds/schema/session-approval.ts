// SessionApproval: one just-in-time approval request, created by the sidecar, decided by a reviewer.
// The spec (the request) is immutable; the decision lives in status, written through the status
// subresource so RBAC on sessionapprovals/status decides who may decide, and the approver is stamped
// from the admission request's userInfo by the webhook.
import { z } from 'zod';
import { conditionSchema, protocolSchema } from './common.ts';

export const sessionApprovalSpecSchema = z
  .object({
    sessionId: z.string().min(1),
    policy: z.string().min(1).describe('SessionPolicy whose rule asked for approval.'),
    rule: z.string().min(1).describe('Guardrail rule name.'),
    target: z.string().min(1),
    protocol: protocolSchema,
    subject: z.string().describe('Identity of the agent (token subject or service account).'),
    pod: z.string().optional(),
    statement: z.string().max(65536).describe('The SQL statement, command or request awaiting approval.'),
    expiresAt: z.string().describe('RFC 3339 time after which the request counts as denied.'),
  })
  .describe('A request for a just-in-time approval.');
export type SessionApprovalSpec = z.infer<typeof sessionApprovalSpecSchema>;

export const approvalDecisionSchema = z
  .object({
    approved: z.boolean(),
    reason: z.string().max(1024).optional(),
    approver: z
      .string()
      .optional()
      .describe(
        'Stamped by the admission webhook from the authenticated user; never trusted from the client.',
      ),
    approverGroups: z.array(z.string()).optional(),
    decidedAt: z.string().optional(),
  })
  .describe(
    'Written through the status subresource by a reviewer (RBAC: update on sessionapprovals/status); final once set.',
  );
export type ApprovalDecision = z.infer<typeof approvalDecisionSchema>;

export const sessionApprovalStatusSchema = z.object({
  phase: z.enum(['Pending', 'Approved', 'Denied', 'Expired']).optional(),
  decision: approvalDecisionSchema.optional(),
  conditions: z.array(conditionSchema).optional(),
});

export const SESSION_APPROVAL = {
  group: 'chaperone.dev',
  version: 'v1alpha1',
  kind: 'SessionApproval',
  plural: 'sessionapprovals',
  singular: 'sessionapproval',
  shortNames: ['sapp'],
} as const;
