// Admission of pods in opted-in namespaces: pick the SessionPolicy, refuse what could bypass capture,
// inject (mutating), and check the final object still carries exactly that injection (validating).
import { isDeepStrictEqual } from 'node:util';
import type { V1Container, V1Pod } from '@kubernetes/client-node';
import type { AdmissionRequest, Decision } from '../admission.ts';
import { allow, deny } from '../admission.ts';
import { attributePod, withoutLauncherEnv } from '../attribution/index.ts';
import { cloneJson } from '../clone.ts';
import type { ClusterReader } from '../cluster.ts';
import type { WebhookConfig } from '../config.ts';
import { ANNOTATIONS, CONTAINERS, LABELS } from '../constants.ts';
import { injectPod, renderPodPatch, stripInjection } from '../inject.ts';
import { NoDnsResolverError } from '../iptables.ts';
import { jsonEqual } from '../json.ts';
import {
  closedProbePorts,
  containerViolations,
  hardenAgentContainer,
  type PodCheckOptions,
  podViolations,
} from '../pod-checks.ts';
import {
  choosePolicy,
  namedSecrets,
  notReadyReason,
  PolicyInvalidError,
  policySecretNames,
  type RawSessionPolicy,
  type ResolvedPolicy,
  resolvePolicy,
  sidecarHostNames,
} from '../policy.ts';
import type { RendererLookup } from '../renderer-registry.ts';
import { configRenderingHash, configWithRendering } from '../rendering.ts';
import { formatLabels } from '../selector.ts';

export interface PodHandlerDeps {
  /** Possibly a cache: only trusted for answers that inject. */
  cluster: ClusterReader;
  /** The API itself; confirms any skip or refusal the cache suggests (absent: cluster is live). */
  liveCluster?: ClusterReader;
  config: WebhookConfig;
  /** Configured plus discovered DNS resolvers. */
  dnsResolvers: () => readonly string[];
  /**
   * The renderings other live replicas publish (renderer-registry.ts). Absent: the validating call
   * accepts only its own rendering, as when every replica has the same config.
   */
  renderers?: RendererLookup;
  /** A published rendering counts only if a live replica vouched for it this recently (default 5 min). */
  rendererFreshMs?: number;
  now?: () => Date;
}

type Plan =
  | { kind: 'skip'; warnings: string[] }
  | { kind: 'deny'; message: string }
  | { kind: 'mutate'; raw: V1Pod; mutated: V1Pod; warnings: string[] };

const PREFIX = 'chaperone: ';

/*
 * What the checks derive from policies, remembered per object: a raw policy object of the informer
 * cache stands for one version of the policy (a change is a new object, as resolvePolicy assumes),
 * and a resolved spec is frozen. Objects read live are new each time and simply miss.
 */
const secretsOfPolicy = new WeakMap<RawSessionPolicy, readonly string[]>();
const secretsOfSpec = new WeakMap<ResolvedPolicy['spec'], readonly string[]>();
const hostsOfSpec = new WeakMap<ResolvedPolicy['spec'], readonly string[]>();

function remembered<K extends object, V>(memo: WeakMap<K, V>, key: K, compute: (key: K) => V): V {
  let value = memo.get(key);
  if (value === undefined) {
    value = compute(key);
    memo.set(key, value);
  }
  return value;
}

function checkOptions(
  config: WebhookConfig,
  policies: readonly RawSessionPolicy[],
  policy?: ResolvedPolicy,
): PodCheckOptions {
  // Every Secret any policy of the namespace names, not only the chosen policy's.
  const secrets = new Set<string>();
  for (const p of policies)
    for (const name of remembered(secretsOfPolicy, p, (q) => namedSecrets([q]))) secrets.add(name);
  if (policy) for (const name of remembered(secretsOfSpec, policy.spec, policySecretNames)) secrets.add(name);
  return {
    sidecarUid: config.sidecarUid,
    sidecarGid: config.sidecarGid,
    requireAgentRunAsUser: config.requireAgentRunAsUser,
    protectedSecrets: [...secrets].sort(),
    sidecarHosts: policy ? remembered(hostsOfSpec, policy.spec, sidecarHostNames) : [],
    scope: policy ? 'injected' : 'bystander',
  };
}

/** A pod of an opted-in namespace that is not injected still may not reach the injected pods' secrets. */
function bystanderPlan(
  raw: V1Pod,
  policies: readonly RawSessionPolicy[],
  deps: PodHandlerDeps,
  warnings: string[],
): Plan {
  const violations = podViolations(raw, checkOptions(deps.config, policies));
  if (violations.length === 0) return { kind: 'skip', warnings };
  return {
    kind: 'deny',
    message: `${PREFIX}pod refused: it is not recorded, but could reach what chaperone protects in this namespace: ${violations.join('; ')}`,
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
  const policies = await cluster.listSessionPolicies(namespace);
  if (podLabels[LABELS.inject] === 'false') {
    if (nsLabels[LABELS.allowOptOut] === 'true') return bystanderPlan(raw, policies, deps, []);
    warnings.push(
      `${PREFIX}label ${LABELS.inject}=false ignored: namespace ${namespace} does not allow opt-out (label ${LABELS.allowOptOut}=true)`,
    );
  }

  const choice = choosePolicy(policies, podLabels);
  if (choice.kind === 'none') {
    if (nsLabels[LABELS.unmatched] === 'allow') return bystanderPlan(raw, policies, deps, warnings);
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
  const violations = podViolations(stripped, checkOptions(config, policies, policy));
  if (violations.length > 0) {
    return {
      kind: 'deny',
      message: `${PREFIX}pod refused: it could bypass the session recording SessionPolicy ${name} requires: ${violations.join('; ')}`,
    };
  }
  // Attribution (webhook/attribution/): the launcher env is appended after injection, so injectPod
  // sees the earlier injection without it.
  const previous = withoutLauncherEnv(raw);
  let mutated: V1Pod;
  try {
    mutated = injectPod(stripped, policy, { config, dnsResolvers: deps.dnsResolvers() }, previous);
  } catch (error) {
    if (error instanceof NoDnsResolverError) {
      return {
        kind: 'deny',
        message: `${PREFIX}[dns-resolver] cannot render the capture rules: ${error.message}`,
      };
    }
    throw error;
  }
  // Attribution: the launcher stamp and its sidecar env, or why the pod is refused.
  const forged = attributePod(req, mutated, config.templateControllers);
  if (forged) return { kind: 'deny', message: PREFIX + forged };
  // Which config rendered this: read only by our own validating call (validatePod), overwritten here
  // on every mutating call (stripInjection removed any earlier value).
  mutated.metadata!.annotations![ANNOTATIONS.renderedWith] = configRenderingHash(config, deps.dnsResolvers());
  const open = [
    config.adminPort,
    ...policy.spec.inboundPorts.filter((p) => p.protocol === 'TCP').map((p) => p.port),
  ];
  const closed = closedProbePorts(stripped, open);
  if (closed.length > 0) {
    warnings.push(
      `${PREFIX}probes on ports SessionPolicy ${name} does not open (spec.inboundPorts) will fail, the capture rules refuse new inbound connections: ${closed.join('; ')}`,
    );
  }
  return { kind: 'mutate', raw, mutated, warnings };
}

function hasSidecar(pod: V1Pod | undefined): boolean {
  return (pod?.spec?.initContainers ?? []).some((c) => c.name === CONTAINERS.sidecar);
}

/**
 * kubectl debug and friends: new ephemeral containers get the agent checks and hardening on an
 * injected pod, the bystander checks on any other pod of an opted-in namespace.
 */
async function planEphemeral(req: AdmissionRequest, deps: PodHandlerDeps): Promise<Plan> {
  const raw = req.object as V1Pod;
  const old = req.oldObject as V1Pod | undefined;
  const namespace = req.namespace ?? raw.metadata?.namespace ?? '';
  const cluster = deps.liveCluster ?? deps.cluster;
  const policies = await cluster.listSessionPolicies(namespace);
  let policy: ResolvedPolicy | undefined;
  if (hasSidecar(old)) {
    const policyName = old?.metadata?.annotations?.[ANNOTATIONS.policy] ?? '';
    const stored = policies.find((p) => p.metadata.name === policyName);
    try {
      if (stored) policy = resolvePolicy(stored, namespace);
    } catch {
      // An invalid policy still protects its Secrets (namedSecrets reads the raw object).
    }
  }
  const options = checkOptions(deps.config, policies, policy);
  // Injected pods: the agent rules apply even when the policy is gone or invalid.
  if (hasSidecar(old)) options.scope = 'injected';
  const existing = new Set((old?.spec?.ephemeralContainers ?? []).map((c) => c.name));
  const mutated = cloneJson(raw);
  const added = (mutated.spec?.ephemeralContainers ?? []).filter((c) => !existing.has(c.name));
  const violations = added.flatMap((c) =>
    containerViolations(c, 'ephemeralContainer', raw.spec?.securityContext, options),
  );
  if (violations.length > 0) {
    return {
      kind: 'deny',
      message: `${PREFIX}ephemeral container refused: it could bypass session recording or reach what chaperone protects: ${violations.join('; ')}`,
    };
  }
  if (!hasSidecar(old)) return { kind: 'skip', warnings: [] };
  for (const c of added) hardenAgentContainer(c);
  return { kind: 'mutate', raw, mutated, warnings: [] };
}

const CONNECT_SUBRESOURCES = ['exec', 'attach', 'portforward'] as const;

/**
 * exec/attach into chaperone's containers would read everything the sidecar holds; port-forward
 * opens connections to the sidecar's loopback listeners that no agent identity stands behind (and
 * admission cannot see which ports kubectl will ask for). Refused unless the user is in a
 * break-glass group; then allowed, logged and annotated in the audit event.
 */
async function planConnect(req: AdmissionRequest, deps: PodHandlerDeps): Promise<Decision> {
  const sub = req.subResource as (typeof CONNECT_SUBRESOURCES)[number] | undefined;
  if (!sub || !CONNECT_SUBRESOURCES.includes(sub)) return allow();
  const namespace = req.namespace ?? '';
  const name = req.name ?? '';
  let reason: string | undefined;
  if (sub === 'portforward') {
    const cluster = deps.liveCluster ?? deps.cluster;
    const pod = cluster.getPod ? await cluster.getPod(namespace, name) : undefined;
    if (!cluster.getPod || hasSidecar(pod)) {
      reason = `port-forward into pod ${name}, which carries the chaperone sidecar, would reach its listeners and admin port with no agent identity`;
    }
  } else {
    const container = (req.object as { container?: string } | undefined)?.container ?? '';
    if (container === CONTAINERS.sidecar || container === CONTAINERS.init) {
      reason = `${sub === 'exec' ? 'exec' : 'attach'} into container ${container} of pod ${name} would expose the credentials, signing key and recordings it holds`;
    }
  }
  if (!reason) return allow();
  const groups = req.userInfo.groups ?? [];
  const breakGlass = deps.config.breakGlassGroups.find((g) => groups.includes(g));
  if (breakGlass) {
    return {
      allowed: true,
      warnings: [
        `${PREFIX}break-glass: allowed for group ${breakGlass}; this use is logged and audited: ${reason}`,
      ],
      auditAnnotations: {
        'break-glass': `user=${req.userInfo.username ?? ''} group=${breakGlass} ${sub} pod=${namespace}/${name}`,
      },
    };
  }
  return deny(
    `${PREFIX}[chaperone-process] ${reason}; refused (members of the webhook's breakGlassGroups may, and are audited)`,
  );
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
  if (req.operation === 'CONNECT') return planConnect(req, deps);
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
  // Equal (the common case): no drift, and no patch to compute.
  if (jsonEqual(p.raw, p.mutated)) return allow();
  const drift = renderPodPatch(p.raw, p.mutated);
  if (drift.length === 0) return allow();
  const other = await otherRendering(req, p.raw, deps);
  if (other.accepted) return allow();
  const paths = [...new Set(drift.map((op) => op.path))].slice(0, 10).join(', ');
  return deny(
    `${PREFIX}the pod differs from chaperone's injection for it (changed after injection?): ${paths}${other.why}`,
  );
}

const HASH = /^[0-9a-f]{16}$/;

/**
 * During a rollout the mutating call of a create may have run on a replica whose config differs
 * (other sidecar resources, say): that replica stamped its rendering's hash. Accept the pod only if
 * that rendering is published (renderer-registry.ts), a live replica vouched for it within the
 * freshness window, and re-rendering with it (our own checks, its rendering) gives exactly this pod.
 * The annotation cannot be chosen by the pod's author: every mutating call strips it and stamps its
 * own; a later mutating webhook that sets it still has to produce exactly a rendering one of our live
 * replicas would make, and any other change it made is refused as before.
 */
async function otherRendering(
  req: AdmissionRequest,
  raw: V1Pod,
  deps: PodHandlerDeps,
): Promise<{ accepted: boolean; why: string }> {
  const named = raw.metadata?.annotations?.[ANNOTATIONS.renderedWith];
  const own = configRenderingHash(deps.config, deps.dnsResolvers());
  if (named === undefined || named === own || req.operation !== 'CREATE' || req.subResource)
    return { accepted: false, why: '' };
  const versus = ` (rendered with ${named}, this replica renders with ${own}`;
  if (!deps.renderers || !HASH.test(named)) return { accepted: false, why: `${versus}: no such rendering)` };
  const published = await deps.renderers.lookup(named);
  if (!published) return { accepted: false, why: `${versus}: no such rendering is published)` };
  const now = (deps.now ?? (() => new Date()))();
  const freshMs = deps.rendererFreshMs ?? 300_000;
  if (now.getTime() - published.seenAt.getTime() > freshMs) {
    return {
      accepted: false,
      why: `${versus}: no live replica renders with it since ${published.seenAt.toISOString()})`,
    };
  }
  const { rendering } = published;
  const again = await plan(req, {
    ...deps,
    config: configWithRendering(deps.config, rendering),
    dnsResolvers: () => rendering.dnsResolvers,
  });
  if (again.kind === 'mutate' && jsonEqual(again.raw, again.mutated)) return { accepted: true, why: '' };
  return { accepted: false, why: `${versus}, which renders it differently too)` };
}
