// Building blocks shared by the SessionPolicy and SessionApproval schemas and the sidecar config.
import { RE2JS } from 're2js';
import { z } from 'zod';

export const protocolSchema = z
  .enum(['postgres', 'ssh', 'http', 'kubernetes'])
  .describe('The protocol the sidecar speaks to the agent and to the upstream.');
export type Protocol = z.infer<typeof protocolSchema>;

/** A DNS-1123 label: used for target names, which become env var and file names. */
export const dnsLabelSchema = z
  .string()
  .min(1)
  .max(63)
  .regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/, 'must be a DNS-1123 label (lowercase letters, digits, "-")');

export const portSchema = z.number().int().min(1).max(65535);

function compilesAsRe2(pattern: string): boolean {
  try {
    RE2JS.compile(pattern);
    return true;
  } catch {
    return false;
  }
}

/** Patterns run with RE2 semantics (linear time), so no policy can make the proxy hang. */
export const re2PatternSchema = z
  .string()
  .min(1)
  .max(1024)
  .refine(compilesAsRe2, {
    message: 'must be a valid RE2 regular expression (no backreferences or lookaround)',
  })
  .describe('An RE2 regular expression (no backreferences or lookaround).');

export const secretRefSchema = z
  .object({
    name: dnsLabelSchema.or(z.string().min(1).max(253)).describe('Name of a Secret in the policy namespace.'),
  })
  .describe('A Secret in the same namespace as the policy.');

export const secretKeyRefSchema = secretRefSchema
  .extend({ key: z.string().min(1).describe('Key inside the Secret.') })
  .describe('One key of a Secret in the same namespace as the policy.');

const labelSelectorRequirementSchema = z.object({
  key: z.string().min(1),
  operator: z.enum(['In', 'NotIn', 'Exists', 'DoesNotExist']),
  values: z.array(z.string()).optional(),
});

export const labelSelectorSchema = z
  .object({
    matchLabels: z.record(z.string(), z.string()).optional(),
    matchExpressions: z.array(labelSelectorRequirementSchema).optional(),
  })
  .describe('A Kubernetes label selector; an empty selector matches every pod in the namespace.');
export type LabelSelector = z.infer<typeof labelSelectorSchema>;

export const conditionSchema = z.object({
  type: z.string(),
  status: z.enum(['True', 'False', 'Unknown']),
  reason: z.string(),
  message: z.string(),
  lastTransitionTime: z.string(),
  observedGeneration: z.number().int().optional(),
});
export type Condition = z.infer<typeof conditionSchema>;
