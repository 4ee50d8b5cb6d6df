// Admission of pods in opted-in namespaces: pick the SessionPolicy, refuse what could bypass capture,
// inject (mutating), and check the final object still carries exactly that injection (validating).
import { isDeepStrictEqual } from 'node:util';
import type { V1Container, V1Pod } from '@kubernetes/client-node';
import type { AdmissionRequest, Decision } from '../admission.ts';
import { allow, deny } from '../admission.ts';
import { attributePod, withoutLauncherEnv } from '../attribution/index.ts';
import type { ClusterReader } from '../cluster.ts';
import type { WebhookConfig } from '../config.ts';
import { ANNOTATIONS, CONTAINERS, LABELS } from '../constants.ts';
import { injectPod, renderPodPatch, stripInjection } from '../inject.ts';
import { containerViolations, hardenAgentContainer, podViolations } from '../pod-checks.ts';
import {
  choosePolicy,
  notReadyReason,
  PolicyInvalidError,
  policySecretNames,
  type ResolvedPolicy,
  resolvePolicy,
} from '../policy.ts';
import { formatLabels } from '../selector.ts';

export interface PodHandlerDeps {
  /** Possibly a cache: only trusted for answers that inject. */
  cluster: ClusterReader;
  /** The API itself; confirms any skip or refusal the cache suggests (absent: cluster is live). */
  liveCluster?: ClusterReader;
  config: WebhookConfig;
  /** Configured plus discovered DNS resolvers. */
  dnsResolvers: () => readonly string[];
}

type Plan =
  | { kind: 'skip'; warnings: string[] }
  | { kind: 'deny'; message: string }
  | { kind: 'mutate'; raw: V1Pod; mutated: V1Pod; warnings: string[] };

const PREFIX = 'chaperone: ';

function checkOptions(policy: ResolvedPolicy, config: WebhookConfig) {
  return {
    sidecarUid: config.sidecarUid,
    sidecarGid: config.sidecarGid,
    requireAgentRunAsUser: config.requireAgentRunAsUser,
    protectedSecrets: policySecretNames(policy.spec),
    policyName: policy.name,
  };
}

async function planCreate(req: AdmissionRequest, deps: PodHandlerDeps): Promise<Plan> {
  const { config, cluster } = deps;
  const raw = req.object as V1Pod;
  const namespace = req.namespace ?? raw.metadata?.namespace;
  if (!namespace) return { kind: 'deny', message: `${PREFIX}the pod has no namespace` };
  // Never our own namespace nor kube-system, whatever the webhook configuration says (deadlock).
  if (namespace === config.systemNamespace || namespace === 'kube-system')
    return { kind: 'skip', warnings: [] };
  const nsLabels = await cluster.namespaceLabels(namespace);
  if (nsLabels[LABELS.recording] !== 'enabled') return { kind: 'skip', warnings: [] };

  const podLabels = raw.metadata?.labels ?? {};
  const warnings: string[] = [];
  if (podLabels[LABELS.inject] === 'false') {
    if (nsLabels[LABELS.allowOptOut] === 'true') return { kind: 'skip', warnings: [] };
    warnings.push(
      `${PREFIX}label ${LABELS.inject}=false ignored: namespace ${namespace} does not allow opt-out (label ${LABELS.allowOptOut}=true)`,
    );
  }

  const choice = choosePolicy(await cluster.listSessionPolicies(namespace), podLabels);
  if (choice.kind === 'none') {
    if (nsLabels[LABELS.unmatched] === 'allow') return { kind: 'skip', warnings };
    return {
      kind: 'deny',
      message: `${PREFIX}no SessionPolicy in namespace ${namespace} selects this pod (labels ${formatLabels(podLabels)}); pods in namespaces labelled ${LABELS.recording}=enabled are recorded. Create a SessionPolicy whose podSelector matches, or label the namespace ${LABELS.unmatched}=allow`,
    };
  }
  if (choice.kind === 'many') {
    return {
      kind: 'deny',
      message: `${PREFIX}SessionPolicies ${choice.names.join(', ')} in namespace ${namespace} all select this pod (labels ${formatLabels(podLabels)}); exactly one may: narrow their podSelectors`,
    };
  }
  const name = choice.policy.metadata.name;
  const reason = notReadyReason(choice.policy);
  if (reason) return { kind: 'deny', message: `${PREFIX}SessionPolicy ${name} is not Ready: ${reason}` };
  let policy: ResolvedPolicy;
  try {
    policy = resolvePolicy(choice.policy, namespace);
  } catch (error) {
    if (error instanceof PolicyInvalidError) return { kind: 'deny', message: PREFIX + error.message };
    throw error;
  }

  const stripped = stripInjection(raw);
  const violations = podViolations(stripped, checkOptions(policy, config));
  if (violations.length > 0) {
    return {
      kind: 'deny',
      message: `${PREFIX}pod refused: it could bypass the session recording SessionPolicy ${name} requires: ${violations.join('; ')}`,
    };
  }
  // Attribution (webhook/attribution/): the launcher stamp and its sidecar env, or why it is refused.
  const previous = withoutLauncherEnv(raw);
  const mutated = injectPod(stripped, policy, { config, dnsResolvers: deps.dnsResolvers() }, previous);
  const forged = attributePod(req, mutated, config.templateControllers);
  if (forged) return { kind: 'deny', message: PREFIX + forged };
  return { kind: 'mutate', raw, mutated, warnings };
}

function hasSidecar(pod: V1Pod | undefined): boolean {
  return (pod?.spec?.initContainers ?? []).some((c) => c.name === CONTAINERS.sidecar);
}

/** kubectl debug and friends: new ephemeral containers get the agent checks and hardening. */
async function planEphemeral(req: AdmissionRequest, deps: PodHandlerDeps): Promise<Plan> {
  const raw = req.object as V1Pod;
  const old = req.oldObject as V1Pod | undefined;
  if (!hasSidecar(old)) return { kind: 'skip', warnings: [] };
  const namespace = req.namespace ?? raw.metadata?.namespace ?? '';
  const policyName = old?.metadata?.annotations?.[ANNOTATIONS.policy] ?? '';
  const stored = policyName ? await deps.cluster.getSessionPolicy(namespace, policyName) : undefined;
  let protectedSecrets: string[] = [];
  if (stored) {
    try {
      protectedSecrets = policySecretNames(resolvePolicy(stored, namespace).spec);
    } catch {
      // An invalid policy protects nothing more than the checks below.
    }
  }
  const existing = new Set((old?.spec?.ephemeralContainers ?? []).map((c) => c.name));
  const mutated = structuredClone(raw);
  const added = (mutated.spec?.ephemeralContainers ?? []).filter((c) => !existing.has(c.name));
  const violations = added.flatMap((c) =>
    containerViolations(c, 'ephemeralContainer', raw.spec?.securityContext, {
      sidecarUid: deps.config.sidecarUid,
      sidecarGid: deps.config.sidecarGid,
      requireAgentRunAsUser: deps.config.requireAgentRunAsUser,
      protectedSecrets,
      policyName,
    }),
  );
  if (violations.length > 0) {
    return {
      kind: 'deny',
      message: `${PREFIX}ephemeral container refused: it could bypass session recording: ${violations.join('; ')}`,
    };
  }
  for (const c of added) hardenAgentContainer(c);
  return { kind: 'mutate', raw, mutated, warnings: [] };
}

/** A cache may lag behind a new policy, Ready condition or namespace label: never skip or refuse on its word. */
async function planCreateConfirmed(req: AdmissionRequest, deps: PodHandlerDeps): Promise<Plan> {
  const first = await planCreate(req, deps);
  if (first.kind === 'mutate' || !deps.liveCluster) return first;
  return planCreate(req, { ...deps, cluster: deps.liveCluster });
}

function plan(req: AdmissionRequest, deps: PodHandlerDeps): Promise<Plan> | Plan {
  if (req.kind.kind !== 'Pod') return { kind: 'skip', warnings: [] };
  if (req.operation === 'CREATE' && !req.subResource) return planCreateConfirmed(req, deps);
  if (req.operation === 'UPDATE' && req.subResource === 'ephemeralcontainers')
    return planEphemeral(req, deps);
  return { kind: 'skip', warnings: [] };
}

export async function mutatePod(req: AdmissionRequest, deps: PodHandlerDeps): Promise<Decision> {
  const p = await plan(req, deps);
  if (p.kind === 'deny') return deny(p.message);
  if (p.kind === 'skip') return allow(p.warnings);
  return { allowed: true, patch: renderPodPatch(p.raw, p.mutated), warnings: p.warnings };
}

function chaperoneContainers(pod: V1Pod | undefined): V1Container[] {
  return (pod?.spec?.initContainers ?? []).filter(
    (c) => c.name === CONTAINERS.init || c.name === CONTAINERS.sidecar,
  );
}

/**
 * The final object must be what the mutating webhook would make of it: nothing a later mutating
 * webhook (or a skipped re-invocation) changed may weaken capture. Updates must leave chaperone's
 * containers alone (their images are mutable).
 */
export async function validatePod(req: AdmissionRequest, deps: PodHandlerDeps): Promise<Decision> {
  if (req.kind.kind !== 'Pod') return allow();
  if (req.operation === 'UPDATE' && !req.subResource) {
    const launcher = attributePod(req); // attribution: the launcher stamp never changes
    if (launcher) return deny(PREFIX + launcher);
    const before = chaperoneContainers(req.oldObject as V1Pod);
    if (before.length > 0 && !isDeepStrictEqual(before, chaperoneContainers(req.object as V1Pod))) {
      return deny(
        `${PREFIX}the ${CONTAINERS.init} and ${CONTAINERS.sidecar} containers cannot be changed after injection`,
      );
    }
    return allow();
  }
  const p = await plan(req, deps);
  if (p.kind === 'deny') return deny(p.message);
  if (p.kind === 'skip') return allow();
  const drift = renderPodPatch(p.raw, p.mutated);
  if (drift.length > 0) {
    const paths = [...new Set(drift.map((op) => op.path))].slice(0, 10).join(', ');
    return deny(
      `${PREFIX}the pod differs from chaperone's injection for it (changed after injection?): ${paths}`,
    );
  }
  return allow();
}
