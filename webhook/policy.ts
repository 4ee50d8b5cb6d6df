// SessionPolicy objects as the API returns them, and the decisions the webhook takes on them:
// which one applies to a pod, and whether it is Ready to be injected.

import { isIP } from 'node:net';
import { z } from 'zod';
import { type SessionPolicySpec, sessionPolicySpecSchema, sshHostKeySecretName } from '../crds/index.ts';
import { deepFreeze } from './clone.ts';
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

/*
 * Parses are remembered per raw object: the informer cache hands out the same object until the
 * policy changes (then a new one), so a pod admission parses no policy; objects read live are new
 * each time and simply miss. Cached results are frozen: a caller that wrote into one would change
 * every later admission, so writing throws instead.
 */
type Selector = z.infer<typeof sessionPolicySpecSchema.shape.podSelector>;
const selectors = new WeakMap<RawSessionPolicy, Selector | null>();
const resolved = new WeakMap<RawSessionPolicy, Map<string, ResolvedPolicy | PolicyInvalidError>>();

function selectorOf(policy: RawSessionPolicy): Selector | null {
  let selector = selectors.get(policy);
  if (selector === undefined) {
    const raw = (policy.spec as { podSelector?: unknown } | undefined)?.podSelector;
    const parsed = sessionPolicySpecSchema.shape.podSelector.safeParse(raw);
    selector = parsed.success ? deepFreeze(parsed.data) : null;
    selectors.set(policy, selector);
  }
  return selector;
}

/** The policies whose podSelector matches; several is a configuration error the caller reports. */
export function choosePolicy(
  policies: readonly RawSessionPolicy[],
  podLabels: Record<string, string>,
): PolicyChoice {
  const matching = policies.filter((p) => {
    const selector = selectorOf(p);
    // A selector we cannot read matches nothing rather than everything.
    return selector !== null && selectorMatches(selector, podLabels);
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

/** The policy's spec parsed (defaults applied); throws PolicyInvalidError. The result is frozen. */
export function resolvePolicy(policy: RawSessionPolicy, namespace: string): ResolvedPolicy {
  let perNamespace = resolved.get(policy);
  if (!perNamespace) {
    perNamespace = new Map();
    resolved.set(policy, perNamespace);
  }
  let result = perNamespace.get(namespace);
  if (!result) {
    try {
      result = deepFreeze(parsePolicy(policy, namespace));
    } catch (error) {
      if (!(error instanceof PolicyInvalidError)) throw error;
      result = error;
    }
    perNamespace.set(namespace, result);
  }
  if (result instanceof PolicyInvalidError) throw result;
  return result;
}

function parsePolicy(policy: RawSessionPolicy, namespace: string): ResolvedPolicy {
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
  for (const issuer of spec.identity.issuers) {
    if (issuer.introspection) names.add(issuer.introspection.clientSecretSecret.name);
  }
  return [...names].sort();
}

/**
 * Every Secret any of these policies names, read from the raw objects (so an invalid policy, or a
 * field this version does not know, still protects its Secrets): any object under a key ending in
 * "Secret" or "SecretRef" whose `name` is a string.
 */
export function namedSecrets(policies: readonly RawSessionPolicy[]): string[] {
  const names = new Set<string>();
  const walk = (value: unknown, key: string): void => {
    if (Array.isArray(value)) {
      for (const item of value) walk(item, key);
      return;
    }
    if (value === null || typeof value !== 'object') return;
    const name = (value as { name?: unknown }).name;
    if (/secret(ref)?$/i.test(key) && typeof name === 'string') names.add(name);
    for (const [k, v] of Object.entries(value)) walk(v, k);
  };
  for (const policy of policies) {
    walk(policy.spec, 'spec');
    // Not named in the spec: the sidecar's SSH host key the operator creates for the policy.
    names.add(sshHostKeySecretName(policy.metadata.name));
  }
  return [...names].sort();
}

function hostOfUrl(url: string): string | undefined {
  try {
    return new URL(url).hostname.replace(/^\[(.*)\]$/, '$1');
  } catch {
    return undefined;
  }
}

/** Host names (not IP addresses) the sidecar resolves for this policy. */
export function sidecarHostNames(spec: SessionPolicySpec): string[] {
  // The apiserver (approvals, the cluster's token issuer) by the names in-cluster clients use.
  const hosts: Array<string | undefined> = ['kubernetes', 'kubernetes.default', 'kubernetes.default.svc'];
  for (const t of spec.targets) hosts.push(t.upstream.host, t.tls?.serverName);
  if (spec.recording.store.endpoint) hosts.push(hostOfUrl(spec.recording.store.endpoint));
  else if (spec.recording.store.url.startsWith('s3://')) hosts.push('amazonaws.com');
  for (const issuer of spec.identity.issuers) {
    hosts.push(hostOfUrl(issuer.issuer));
    if (issuer.jwksUri) hosts.push(hostOfUrl(issuer.jwksUri));
  }
  if (spec.alerts?.webhookUrl) hosts.push(hostOfUrl(spec.alerts.webhookUrl));
  return [...new Set(hosts.filter((h): h is string => !!h && isIP(h) === 0))].sort();
}
