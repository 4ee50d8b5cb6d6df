// SessionPolicy objects as the API returns them, and the decisions the webhook takes on them:
// which one applies to a pod, and whether it is Ready to be injected.
import { z } from 'zod';
import { type SessionPolicySpec, sessionPolicySpecSchema } from '../crds/index.ts';
import { selectorMatches } from './selector.ts';

export interface RawSessionPolicy {
  apiVersion?: string;
  kind?: string;
  metadata: { name: string; namespace?: string; generation?: number; uid?: string; [k: string]: unknown };
  spec?: unknown;
  status?: {
    observedGeneration?: number;
    conditions?: Array<{
      type: string;
      status: string;
      reason?: string;
      message?: string;
      observedGeneration?: number;
    }>;
    [k: string]: unknown;
  };
}

export interface ResolvedPolicy {
  name: string;
  namespace: string;
  generation: number | undefined;
  spec: SessionPolicySpec;
}

export type PolicyChoice =
  | { kind: 'none' }
  | { kind: 'one'; policy: RawSessionPolicy }
  | { kind: 'many'; names: string[] };

/** The policies whose podSelector matches; several is a configuration error the caller reports. */
export function choosePolicy(
  policies: readonly RawSessionPolicy[],
  podLabels: Record<string, string>,
): PolicyChoice {
  const matching = policies.filter((p) => {
    const selector = (p.spec as { podSelector?: unknown } | undefined)?.podSelector;
    const parsed = sessionPolicySpecSchema.shape.podSelector.safeParse(selector);
    // A selector we cannot read matches nothing rather than everything.
    return parsed.success && selectorMatches(parsed.data, podLabels);
  });
  if (matching.length === 0) return { kind: 'none' };
  if (matching.length === 1) return { kind: 'one', policy: matching[0]! };
  return { kind: 'many', names: matching.map((p) => p.metadata.name).sort() };
}

/** Why a policy cannot be injected yet, or undefined when it is Ready for its current generation. */
export function notReadyReason(policy: RawSessionPolicy): string | undefined {
  const ready = policy.status?.conditions?.find((c) => c.type === 'Ready');
  if (!ready) return 'the operator has not reconciled it yet (no Ready condition)';
  if (ready.status !== 'True') {
    return `Ready is ${ready.status}${ready.reason ? ` (${ready.reason})` : ''}${ready.message ? `: ${ready.message}` : ''}`;
  }
  const observed = policy.status?.observedGeneration ?? ready.observedGeneration;
  const generation = policy.metadata.generation;
  if (observed !== undefined && generation !== undefined && observed < generation) {
    return `the operator has not rendered generation ${generation} yet (observed ${observed})`;
  }
  return undefined;
}

export function resolvePolicy(policy: RawSessionPolicy, namespace: string): ResolvedPolicy {
  const parsed = sessionPolicySpecSchema.safeParse(policy.spec);
  if (!parsed.success) {
    throw new PolicyInvalidError(
      `SessionPolicy ${policy.metadata.name} is invalid: ${z.prettifyError(parsed.error)}`,
    );
  }
  return {
    name: policy.metadata.name,
    namespace: policy.metadata.namespace ?? namespace,
    generation: policy.metadata.generation,
    spec: parsed.data,
  };
}

export class PolicyInvalidError extends Error {
  override name = 'PolicyInvalidError';
}

/** Secrets holding credentials the policy hands to the sidecar only (a CA bundle is no secret). */
export function policySecretNames(spec: SessionPolicySpec): string[] {
  const names = new Set<string>();
  for (const t of spec.targets) {
    if (t.credentialsSecret) names.add(t.credentialsSecret.name);
  }
  names.add(spec.recording.signingKeySecret.name);
  if (spec.recording.store.credentialsSecret) names.add(spec.recording.store.credentialsSecret.name);
  if (spec.alerts?.webhookUrlSecret) names.add(spec.alerts.webhookUrlSecret.name);
  return [...names].sort();
}
