// The pod mutation as pure functions: strip whatever chaperone injected before, then inject for
// the policy. Works on the raw admission object (unknown fields survive); the JSON patch is the
// difference between the raw pod and the result.
import { createHash } from 'node:crypto';
import { isIP } from 'node:net';
import type {
  V1Container,
  V1EnvVar,
  V1Pod,
  V1ResourceRequirements,
  V1Volume,
  V1VolumeMount,
} from '@kubernetes/client-node';
import type { Operation } from 'fast-json-patch';
import { policyConfigMapName, sshHostKeySecretName, sshKnownHostsName } from '../crds/index.ts';
import { SIDECAR_PATHS } from '../sidecar/config/index.ts';
import { cloneJson, deepFreeze } from './clone.ts';
import type { WebhookConfig } from './config.ts';
import {
  AGENT_TOKEN_AUDIENCE,
  ANNOTATIONS,
  CONTAINERS,
  PATHS,
  RESERVED_VOLUME_PREFIX,
  VOLUMES,
} from './constants.ts';
import { captureEnv, rulesFromCaptureEnv } from './init/capture.ts';
import { ENV as INIT_ENV } from './init/env.ts';
import { type IptablesOptions, renderIptablesRules } from './iptables.ts';
import { jsonEqual, jsonPatchOf } from './json.ts';
import { hardenAgentContainer } from './pod-checks.ts';
import type { ResolvedPolicy } from './policy.ts';
import { renderingOf } from './rendering.ts';

export const INJECTION_VERSION = 1;
/** Agent env names with this prefix belong to chaperone and are replaced on every injection. */
const RESERVED_ENV_PREFIX = 'CHAPERONE_';

export interface InjectionStatus {
  version: number;
  policy: string;
  generation?: number;
  containers: string[];
  volumes: string[];
  agentEnv: string[];
}

export interface InjectOptions {
  config: WebhookConfig;
  /** Effective resolvers (configured plus discovered); empty: DNS to any address. */
  dnsResolvers: readonly string[];
}

type AnyContainer = V1Container & { restartPolicy?: string };

function isChaperoneContainer(c: { name: string }): boolean {
  return c.name === CONTAINERS.init || c.name === CONTAINERS.sidecar;
}

function readStatus(pod: V1Pod): InjectionStatus | undefined {
  const raw = pod.metadata?.annotations?.[ANNOTATIONS.status];
  if (!raw) return undefined;
  try {
    return JSON.parse(raw) as InjectionStatus;
  } catch {
    return undefined;
  }
}

/** The pod as if chaperone had never touched it (hardening of agent containers aside: it only adds). */
export function stripInjection(raw: V1Pod): V1Pod {
  // Our containers and volumes are dropped before the copy, not copied and dropped.
  const rawSpec = raw.spec;
  const kept = rawSpec
    ? {
        ...raw,
        spec: {
          ...rawSpec,
          ...(rawSpec.initContainers
            ? { initContainers: rawSpec.initContainers.filter((c) => !isChaperoneContainer(c)) }
            : {}),
          ...(rawSpec.volumes
            ? { volumes: rawSpec.volumes.filter((v) => !v.name.startsWith(RESERVED_VOLUME_PREFIX)) }
            : {}),
        },
      }
    : raw;
  const pod = cloneJson(kept);
  const previous = readStatus(pod);
  const injectedEnv = new Set(previous?.agentEnv ?? []);
  const spec = pod.spec;
  if (spec) {
    if (spec.initContainers?.length === 0) delete spec.initContainers;
    if (spec.volumes?.length === 0) delete spec.volumes;
    for (const c of [...(spec.initContainers ?? []), ...(spec.containers ?? [])]) {
      if (c.env) {
        c.env = c.env.filter((e) => !e.name.startsWith(RESERVED_ENV_PREFIX) && !injectedEnv.has(e.name));
        if (c.env.length === 0) delete c.env;
      }
      // Only the agent token mount is ours here; any other reserved name stays, for the checks to refuse.
      if (c.volumeMounts) {
        c.volumeMounts = c.volumeMounts.filter(
          (m) =>
            m.name !== VOLUMES.agentToken && m.name !== VOLUMES.sshKnownHosts && m.name !== VOLUMES.agentKube,
        );
        if (c.volumeMounts.length === 0) delete c.volumeMounts;
      }
    }
  }
  const annotations = pod.metadata?.annotations;
  if (annotations) {
    delete annotations[ANNOTATIONS.status];
    delete annotations[ANNOTATIONS.policy];
    delete annotations[ANNOTATIONS.renderedWith];
    if (Object.keys(annotations).length === 0) delete pod.metadata!.annotations;
  }
  return pod;
}

/** A volume name within the 63-character limit, stable for a given target. */
export function perTargetVolumeName(prefix: string, target: string): string {
  const name = prefix + target;
  if (name.length <= 63) return name;
  const hash = createHash('sha256').update(target).digest('hex').slice(0, 8);
  return `${prefix}${target.slice(0, 63 - prefix.length - 9)}-${hash}`;
}

export function envName(target: string): string {
  return target.toUpperCase().replaceAll('-', '_');
}

function hasSsh(policy: ResolvedPolicy): boolean {
  return policy.spec.targets.some((t) => t.protocol === 'ssh');
}

/** Agents' known_hosts for the sidecar's ssh listeners (operator/render/ssh-host-key.ts renders it). */
function knownHostsVolume(policy: ResolvedPolicy): V1Volume {
  return { name: VOLUMES.sshKnownHosts, configMap: { name: sshKnownHostsName(policy.name) } };
}

/** Env for agent containers: where each target listens, and the token file to present. */
export function agentEnv(policy: ResolvedPolicy): V1EnvVar[] {
  const env: V1EnvVar[] = [];
  for (const t of policy.spec.targets) {
    env.push({ name: `CHAPERONE_${envName(t.name)}_HOST`, value: '127.0.0.1' });
    env.push({ name: `CHAPERONE_${envName(t.name)}_PORT`, value: String(t.listenPort) });
  }
  const postgres = policy.spec.targets.find((t) => t.protocol === 'postgres');
  if (postgres) {
    env.push({ name: 'PGHOST', value: '127.0.0.1' }, { name: 'PGPORT', value: String(postgres.listenPort) });
  }
  env.push({ name: 'CHAPERONE_TOKEN_FILE', value: PATHS.agentTokenFile });
  if (hasSsh(policy)) env.push({ name: 'CHAPERONE_SSH_KNOWN_HOSTS', value: PATHS.sshKnownHostsFile });
  // kubectl and client libraries use the Kubernetes target (the first one) through the sidecar.
  const kube = policy.spec.targets.find((t) => t.protocol === 'kubernetes');
  if (kube) env.push({ name: 'KUBECONFIG', value: SIDECAR_PATHS.agentKubeconfigFile(kube.name) });
  return env;
}

/**
 * Mode of the files of the sidecar-only Secret and token volumes. kubelet writes them owned by root;
 * with a pod fsGroup it makes their group fsGroup and adds group read. So 0400 (0440 root:fsGroup
 * once kubelet is done) where the pod has an fsGroup, and 0444 where it has none, since the non-root
 * sidecar could read nothing else. Either way only the sidecar mounts them (see docs/security.md).
 */
export function secretFileMode(fsGroup: number | undefined): number {
  return fsGroup === undefined ? 0o444 : 0o400;
}

function hasKubeTarget(policy: ResolvedPolicy): boolean {
  return policy.spec.targets.some((t) => t.protocol === 'kubernetes');
}

function sidecarVolumes(
  policy: ResolvedPolicy,
  config: WebhookConfig,
  defaultMode: number,
): Array<{ volume: V1Volume; mount: V1VolumeMount }> {
  const { spec } = policy;
  const out: Array<{ volume: V1Volume; mount: V1VolumeMount }> = [
    {
      volume: { name: VOLUMES.config, configMap: { name: policyConfigMapName(policy.name) } },
      mount: { name: VOLUMES.config, mountPath: PATHS.configDir, readOnly: true },
    },
    {
      volume: { name: VOLUMES.spool, emptyDir: { sizeLimit: config.spoolSizeLimit } },
      mount: { name: VOLUMES.spool, mountPath: SIDECAR_PATHS.spoolDir },
    },
    {
      // The sidecar's own API identity (SessionApprovals) and the cluster CA to verify the apiserver.
      volume: {
        name: VOLUMES.sidecarToken,
        projected: {
          defaultMode,
          sources: [
            { serviceAccountToken: { path: 'token', expirationSeconds: 3600 } },
            { configMap: { name: 'kube-root-ca.crt', items: [{ key: 'ca.crt', path: 'ca.crt' }] } },
            {
              downwardAPI: {
                items: [
                  { path: 'namespace', fieldRef: { apiVersion: 'v1', fieldPath: 'metadata.namespace' } },
                ],
              },
            },
          ],
        },
      },
      mount: { name: VOLUMES.sidecarToken, mountPath: PATHS.sidecarTokenDir, readOnly: true },
    },
    {
      volume: {
        name: VOLUMES.signingKey,
        secret: { secretName: spec.recording.signingKeySecret.name, defaultMode },
      },
      mount: { name: VOLUMES.signingKey, mountPath: PATHS.signingKeyDir, readOnly: true },
    },
  ];
  if (hasKubeTarget(policy)) {
    // The sidecar writes the agents' kubeconfig here (its loopback serving CA inside).
    out.push({
      volume: { name: VOLUMES.agentKube, emptyDir: { sizeLimit: '1Mi' } },
      mount: { name: VOLUMES.agentKube, mountPath: SIDECAR_PATHS.agentKubeDir },
    });
  }
  const storeSecret = spec.recording.store.credentialsSecret;
  if (storeSecret) {
    out.push({
      volume: { name: VOLUMES.storeCredentials, secret: { secretName: storeSecret.name, defaultMode } },
      mount: { name: VOLUMES.storeCredentials, mountPath: SIDECAR_PATHS.storeCredentialsDir, readOnly: true },
    });
  }
  for (const t of spec.targets) {
    if (t.credentialsSecret) {
      const name = perTargetVolumeName(VOLUMES.credentialsPrefix, t.name);
      out.push({
        volume: { name, secret: { secretName: t.credentialsSecret.name, defaultMode } },
        mount: { name, mountPath: SIDECAR_PATHS.credentialsDir(t.name), readOnly: true },
      });
    }
    if (t.tls?.caSecret) {
      const name = perTargetVolumeName(VOLUMES.tlsPrefix, t.name);
      out.push({
        volume: {
          name,
          secret: {
            secretName: t.tls.caSecret.name,
            defaultMode,
            items: [{ key: t.tls.caSecret.key, path: 'ca.crt' }],
          },
        },
        mount: { name, mountPath: PATHS.tlsDir(t.name), readOnly: true },
      });
    }
  }
  // Identity liveness: each introspection client secret at the path the operator renders into the
  // sidecar config (SIDECAR_PATHS.introspectionDir), one volume per Secret however many issuers share it.
  const introspectionSecrets = new Set(
    spec.identity.issuers.flatMap((i) => (i.introspection ? [i.introspection.clientSecretSecret.name] : [])),
  );
  for (const secretName of [...introspectionSecrets].sort()) {
    const name = perTargetVolumeName(VOLUMES.introspectionPrefix, secretName);
    out.push({
      volume: { name, secret: { secretName, defaultMode } },
      mount: { name, mountPath: SIDECAR_PATHS.introspectionDir(secretName), readOnly: true },
    });
  }
  if (hasSsh(policy)) {
    // The sidecar's own host key, generated by the operator; agents never mount it (protected).
    out.push({
      volume: {
        name: VOLUMES.sshHostKey,
        secret: {
          secretName: sshHostKeySecretName(policy.name),
          defaultMode,
          items: [{ key: 'privateKey', path: 'privateKey' }],
        },
      },
      mount: {
        name: VOLUMES.sshHostKey,
        mountPath: SIDECAR_PATHS.sshHostKeyFile.replace(/\/privateKey$/, ''),
        readOnly: true,
      },
    });
  }
  const alertsSecret = spec.alerts?.webhookUrlSecret;
  if (alertsSecret) {
    out.push({
      volume: {
        name: VOLUMES.alerts,
        secret: {
          secretName: alertsSecret.name,
          defaultMode,
          items: [{ key: alertsSecret.key, path: 'webhookUrl' }],
        },
      },
      mount: { name: VOLUMES.alerts, mountPath: PATHS.alertsDir, readOnly: true },
    });
  }
  return out;
}

/**
 * Our token volume at the standard path: the apiserver's ServiceAccount admission plugin then leaves
 * our containers alone, so it does not change the pod after us and the apiserver need not call the
 * webhook a second time (reinvocation); the sidecar also gets the usual in-cluster config from it.
 */
const SERVICE_ACCOUNT_MOUNT: V1VolumeMount = {
  name: VOLUMES.sidecarToken,
  mountPath: '/var/run/secrets/kubernetes.io/serviceaccount',
  readOnly: true,
};

function fieldEnv(name: string, fieldPath: string): V1EnvVar {
  return { name, valueFrom: { fieldRef: { apiVersion: 'v1', fieldPath } } };
}

function resources(r: WebhookConfig['resources']['sidecar']): V1ResourceRequirements {
  const out: V1ResourceRequirements = {};
  if (r.requests) out.requests = { ...r.requests };
  if (r.limits) out.limits = { ...r.limits };
  return out;
}

export function initContainer(policy: ResolvedPolicy, options: InjectOptions): V1Container {
  const { config } = options;
  const capture: IptablesOptions = {
    sidecarUid: config.sidecarUid,
    sidecarGid: config.sidecarGid,
    dnsResolvers: options.dnsResolvers,
    redirects: policy.spec.targets
      .filter((t) => t.transparent && isIP(t.upstream.host) !== 0)
      .map((t) => ({ host: t.upstream.host, port: t.upstream.port, listenPort: t.listenPort })),
    adminPort: config.adminPort,
    inboundPorts: policy.spec.inboundPorts,
  };
  // chaperone-init renders the rules from these inputs (a fraction of the rules' size in every pod
  // spec). Rendered here too: what the renderer refuses (no DNS resolver) refuses the pod now, and
  // so does anything chaperone-init would not read back into exactly the same rules.
  const rules = renderIptablesRules(capture);
  const env = captureEnv(capture);
  const again = rulesFromCaptureEnv(env);
  if (again.ipv4 !== rules.ipv4 || again.ipv6 !== rules.ipv6)
    throw new Error('chaperone-init would render other capture rules from their inputs');
  return {
    name: CONTAINERS.init,
    image: config.initImage ?? config.sidecarImage,
    ...(config.imagePullPolicy ? { imagePullPolicy: config.imagePullPolicy } : {}),
    command: [...config.initCommand],
    env: [{ name: INIT_ENV.capture, value: env }],
    resources: resources(config.resources.init),
    volumeMounts: [SERVICE_ACCOUNT_MOUNT],
    securityContext: {
      runAsUser: 0,
      runAsGroup: 0,
      runAsNonRoot: false,
      privileged: false,
      allowPrivilegeEscalation: false,
      readOnlyRootFilesystem: true,
      capabilities: { drop: ['ALL'], add: ['NET_ADMIN', 'NET_RAW'] },
    },
  };
}

export function sidecarContainer(
  policy: ResolvedPolicy,
  options: InjectOptions,
  fsGroup?: number,
): AnyContainer {
  return renderSidecar(policy, options, secretFileMode(fsGroup));
}

/** The sidecar container; `defaultMode` (secretFileMode) is all it reads of the pod. */
function renderSidecar(policy: ResolvedPolicy, options: InjectOptions, defaultMode: number): AnyContainer {
  const { config } = options;
  return {
    name: CONTAINERS.sidecar,
    image: config.sidecarImage,
    ...(config.imagePullPolicy ? { imagePullPolicy: config.imagePullPolicy } : {}),
    args: ['--config', SIDECAR_PATHS.configFile],
    // A native sidecar: starts before the agent containers, stops after them.
    restartPolicy: 'Always',
    env: [
      fieldEnv('CHAPERONE_POD_NAME', 'metadata.name'),
      fieldEnv('CHAPERONE_POD_NAMESPACE', 'metadata.namespace'),
      fieldEnv('CHAPERONE_POD_UID', 'metadata.uid'),
      fieldEnv('CHAPERONE_NODE_NAME', 'spec.nodeName'),
      fieldEnv('CHAPERONE_SERVICE_ACCOUNT', 'spec.serviceAccountName'),
    ],
    resources: resources(config.resources.sidecar),
    securityContext: {
      runAsUser: config.sidecarUid,
      runAsGroup: config.sidecarGid,
      runAsNonRoot: true,
      readOnlyRootFilesystem: true,
      allowPrivilegeEscalation: false,
      capabilities: { drop: ['ALL'] },
      seccompProfile: { type: 'RuntimeDefault' },
    },
    startupProbe: {
      httpGet: { path: '/readyz', port: config.adminPort },
      periodSeconds: 1,
      timeoutSeconds: 1,
      failureThreshold: 120,
    },
    livenessProbe: {
      httpGet: { path: '/healthz', port: config.adminPort },
      periodSeconds: 10,
      timeoutSeconds: 2,
      failureThreshold: 3,
    },
    volumeMounts: [...sidecarVolumes(policy, config, defaultMode).map((v) => v.mount), SERVICE_ACCOUNT_MOUNT],
  };
}

const AGENT_TOKEN_VOLUME: V1Volume = {
  name: VOLUMES.agentToken,
  projected: {
    sources: [
      { serviceAccountToken: { audience: AGENT_TOKEN_AUDIENCE, expirationSeconds: 3600, path: 'token' } },
    ],
  },
};

function injectIntoAgent(
  container: AnyContainer,
  env: readonly V1EnvVar[],
  targets: { ssh: boolean; kube: boolean },
): void {
  const { ssh, kube } = targets;
  hardenAgentContainer(container);
  const ours = new Set(env.map((e) => e.name));
  // Ours first so the agent's own env can refer to them ($(CHAPERONE_DB_PORT)); theirs of the same name go.
  container.env = [...env.map((e) => ({ ...e })), ...(container.env ?? []).filter((e) => !ours.has(e.name))];
  container.volumeMounts = [
    ...(container.volumeMounts ?? []),
    { name: VOLUMES.agentToken, mountPath: PATHS.agentTokenDir, readOnly: true },
    ...(kube ? [{ name: VOLUMES.agentKube, mountPath: SIDECAR_PATHS.agentKubeDir, readOnly: true }] : []),
  ];
  if (ssh) {
    // ssh targets: the sidecar's host key for known_hosts, as a directory (updates apply) and at
    // OpenSSH's default global path (no client option needed), unless the agent mounts that path.
    const taken = new Set(container.volumeMounts.map((m) => m.mountPath));
    container.volumeMounts.push({
      name: VOLUMES.sshKnownHosts,
      mountPath: PATHS.sshKnownHostsDir,
      readOnly: true,
    });
    if (!taken.has(PATHS.sshGlobalKnownHosts2) && !taken.has('/etc/ssh'))
      container.volumeMounts.push({
        name: VOLUMES.sshKnownHosts,
        mountPath: PATHS.sshGlobalKnownHosts2,
        subPath: 'known_hosts',
        readOnly: true,
      });
  }
}

const PROBE_DEFAULTS = { timeoutSeconds: 1, periodSeconds: 10, successThreshold: 1, failureThreshold: 3 };

function defaultImagePullPolicy(image: string | undefined): string {
  const tag = /:([^:/@]+)$/.exec(image ?? '')?.[1];
  return image?.includes('@') || (tag !== undefined && tag !== 'latest') ? 'IfNotPresent' : 'Always';
}

/** A copy with the fields kube-apiserver's defaulting adds to a container we render. */
export function withContainerDefaults(container: AnyContainer): AnyContainer {
  const c = cloneJson(container);
  c.terminationMessagePath ??= '/dev/termination-log';
  c.terminationMessagePolicy ??= 'File';
  c.imagePullPolicy ??= defaultImagePullPolicy(c.image);
  for (const probe of [c.startupProbe, c.livenessProbe, c.readinessProbe]) {
    if (!probe) continue;
    Object.assign(probe, { ...PROBE_DEFAULTS, ...probe });
    if (probe.httpGet) probe.httpGet.scheme ??= 'HTTP';
  }
  const limits = c.resources?.limits;
  if (limits) c.resources!.requests = { ...limits, ...c.resources!.requests };
  return c;
}

/** A copy with the fields kube-apiserver's defaulting adds to a volume we render. */
export function withVolumeDefaults(volume: V1Volume): V1Volume {
  const v = cloneJson(volume);
  if (v.secret) v.secret.defaultMode ??= 0o644;
  if (v.configMap) v.configMap.defaultMode ??= 0o644;
  if (v.projected) v.projected.defaultMode ??= 0o644;
  return v;
}

/**
 * The item already in the pod when it equals what we render, apiserver defaults aside; else a copy
 * of the rendered one. Never a subset: a forged field (command, privileged, envFrom, lifecycle, an
 * extra arg) makes the existing item unequal, so it is replaced by what chaperone renders.
 */
function reuse<T extends { name: string }>(
  rendered: Rendered<T>,
  previous: readonly T[] | undefined,
  defaults: (item: T) => T,
): T {
  const existing = previous?.find((p) => p.name === rendered.item.name);
  if (!existing) return cloneJson(rendered.item);
  // defaults() is idempotent: an item equal to the rendered one, with or without the apiserver's
  // defaults, has the same defaulted form; only other items need theirs computed.
  if (
    jsonEqual(existing, rendered.defaulted) ||
    jsonEqual(existing, rendered.item) ||
    jsonEqual(defaults(existing), rendered.defaulted)
  )
    return cloneJson(existing);
  return cloneJson(rendered.item);
}

/** A rendered item and the same with the apiserver's defaults, both frozen. */
interface Rendered<T> {
  item: T;
  defaulted: T;
}

/**
 * Everything injectPod renders that does not depend on the pod, given the one thing it reads of the
 * pod (the Secret volumes' file mode, from its fsGroup): frozen, shared by every admission with the
 * same inputs. Callers copy what they put into a pod.
 */
interface PodRendering {
  env: readonly V1EnvVar[];
  targets: { ssh: boolean; kube: boolean };
  init: Rendered<AnyContainer>;
  sidecar: Rendered<AnyContainer>;
  agentVolumes: ReadonlyArray<Rendered<V1Volume>>;
  sidecarVolumes: ReadonlyArray<Rendered<V1Volume>>;
  /** The status annotation (volume names are the rendered ones, whichever copy is kept). */
  status: string;
}

function renderPod(policy: ResolvedPolicy, options: InjectOptions, defaultMode: number): PodRendering {
  const env = agentEnv(policy);
  const ssh = hasSsh(policy);
  const container = (item: AnyContainer) => ({ item, defaulted: withContainerDefaults(item) });
  const volume = (item: V1Volume) => ({ item, defaulted: withVolumeDefaults(item) });
  const agentVolumes = [
    volume(cloneJson(AGENT_TOKEN_VOLUME)),
    ...(ssh ? [volume(knownHostsVolume(policy))] : []),
  ];
  const volumes = sidecarVolumes(policy, options.config, defaultMode).map((v) => volume(v.volume));
  const status: InjectionStatus = {
    version: INJECTION_VERSION,
    policy: policy.name,
    ...(policy.generation !== undefined ? { generation: policy.generation } : {}),
    containers: [CONTAINERS.init, CONTAINERS.sidecar],
    volumes: [...agentVolumes.map((v) => v.item.name), ...volumes.map((v) => v.item.name)],
    agentEnv: env.map((e) => e.name),
  };
  return deepFreeze({
    env,
    targets: { ssh, kube: hasKubeTarget(policy) },
    init: container(initContainer(policy, options)),
    sidecar: container(renderSidecar(policy, options, defaultMode)),
    agentVolumes,
    sidecarVolumes: volumes,
    status: JSON.stringify(status),
  });
}

/*
 * Renderings are remembered per resolved policy object (resolvePolicy hands out one deep-frozen
 * object per policy object of the informer cache and namespace; a new generation is a new object),
 * then by the rest of the inputs as content: the config's rendering fields and the effective DNS
 * resolvers (rendering.ts: everything injectPod reads of the config) and the Secret file mode.
 * Policies that are not frozen (built by hand, which could change after a call) are rendered afresh
 * every time. At most RENDERINGS_PER_POLICY entries per policy: config objects of other replicas'
 * renderings come and go.
 */
const renderings = new WeakMap<ResolvedPolicy, Map<string, PodRendering>>();
const RENDERINGS_PER_POLICY = 32;
/** Counts for tests: renderings served from the cache and rendered. */
export const renderingCacheStats = { hits: 0, misses: 0 };

function podRendering(policy: ResolvedPolicy, options: InjectOptions, defaultMode: number): PodRendering {
  if (!Object.isFrozen(policy) || !Object.isFrozen(policy.spec))
    return renderPod(policy, options, defaultMode);
  const key = JSON.stringify([renderingOf(options.config, options.dnsResolvers), defaultMode]);
  let perPolicy = renderings.get(policy);
  if (!perPolicy) {
    perPolicy = new Map();
    renderings.set(policy, perPolicy);
  }
  let rendering = perPolicy.get(key);
  if (rendering) {
    renderingCacheStats.hits++;
    return rendering;
  }
  renderingCacheStats.misses++;
  rendering = renderPod(policy, options, defaultMode);
  if (perPolicy.size >= RENDERINGS_PER_POLICY) perPolicy.clear();
  perPolicy.set(key, rendering);
  return rendering;
}

/**
 * Injects into a pod that stripInjection returned; neither argument is modified. `previous` is the
 * pod before stripping: a re-invocation keeps its (defaulted) copies of what it would render anyway,
 * so injecting an injected pod changes nothing.
 */
export function injectPod(
  stripped: V1Pod,
  policy: ResolvedPolicy,
  options: InjectOptions,
  previous?: V1Pod,
): V1Pod {
  const pod = cloneJson(stripped);
  const spec = pod.spec!;
  const rendering = podRendering(policy, options, secretFileMode(spec.securityContext?.fsGroup));
  for (const c of [...(spec.initContainers ?? []), ...spec.containers])
    injectIntoAgent(c, rendering.env, rendering.targets);
  const before = previous?.spec;
  const container = (c: Rendered<AnyContainer>) => reuse(c, before?.initContainers, withContainerDefaults);
  const volume = (v: Rendered<V1Volume>) => reuse(v, before?.volumes, withVolumeDefaults);
  spec.initContainers = [
    container(rendering.init),
    container(rendering.sidecar),
    ...(spec.initContainers ?? []),
  ];
  spec.volumes = [
    ...(spec.volumes ?? []),
    ...rendering.agentVolumes.map(volume),
    ...rendering.sidecarVolumes.map(volume),
  ];
  pod.metadata ??= {};
  pod.metadata.annotations = {
    ...pod.metadata.annotations,
    [ANNOTATIONS.policy]: policy.name,
    [ANNOTATIONS.status]: rendering.status,
  };
  return pod;
}

/**
 * RFC 6902 operations turning the raw admission object into the mutated one: fast-json-patch's
 * compare, without its copy of every added value (json.ts), so they share `mutated`'s values.
 */
export function renderPodPatch(raw: object, mutated: object): Operation[] {
  return jsonPatchOf(raw, mutated);
}
