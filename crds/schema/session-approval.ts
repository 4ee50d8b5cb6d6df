// SessionApproval: one just-in-time approval request, created by the sidecar, decided by a reviewer.
// The approver is stamped from the admission request's userInfo by the validating webhook.
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
    decision: z
      .object({
        approved: z.boolean(),
        reason: z.string().max(1024).optional(),
        approver: z
          .string()
          .optional()
          .describe(
            'Stamped by the admission webhook from the requesting user; never trusted from the client.',
          ),
        approverGroups: z.array(z.string()).optional(),
        decidedAt: z.string().optional(),
      })
      .optional()
      .describe('Set by a reviewer; immutable once set.'),
  })
  .describe('A request for a just-in-time approval.');
export type SessionApprovalSpec = z.infer<typeof sessionApprovalSpecSchema>;

export const sessionApprovalStatusSchema = z.object({
  phase: z.enum(['Pending', 'Approved', 'Denied', 'Expired']).optional(),
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
