// Public index of crds/: the zod schemas of the Chaperone API (chaperone.dev/v1alpha1).
export * from './approvers.ts';
export * from './policy-objects.ts';
export * from './schema/common.ts';
export * from './schema/session-approval.ts';
export * from './schema/session-policy.ts';
