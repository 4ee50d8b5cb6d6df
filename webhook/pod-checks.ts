// What makes a pod able to bypass capture or reach the sidecar's secrets, checked on the pod as the
// user wrote it (after stripping a previous injection). Every finding is reported at once; each
// starts with the rule it breaks ([rule]) and names the field to change. docs/security.md explains
// each rule and how it relates to Pod Security Admission's profiles.
import type {
  V1Container,
  V1EphemeralContainer,
  V1Pod,
  V1PodSecurityContext,
  V1PodSpec,
} from '@kubernetes/client-node';
import { CONTAINERS, RESERVED_VOLUME_PREFIX, VOLUMES } from './constants.ts';

/** Rule names as they appear in refusals and in docs/security.md. */
export const RULES = {
  reservedName: 'reserved-name',
  chaperoneVolume: 'chaperone-volume',
  protectedSecret: 'protected-secret',
  hostNamespace: 'host-namespace',
  hostPath: 'host-path',
  privileged: 'privileged',
  capability: 'capability',
  privilegeEscalation: 'privilege-escalation',
  sidecarIdentity: 'sidecar-identity',
  rootUser: 'root-user',
  unknownUser: 'unknown-user',
  nameResolution: 'name-resolution',
  chaperoneProcess: 'chaperone-process',
} as const;
export type Rule = (typeof RULES)[keyof typeof RULES];

/**
 * injected: the pod gets the sidecar; every rule applies. bystander: a pod of an opted-in namespace
 * that is not injected (opt-out, unmatched=allow); only the rules that protect the injected pods
 * around it apply (their Secrets, their files on the node, their processes).
 */
export type CheckScope = 'injected' | 'bystander';

export interface PodCheckOptions {
  sidecarUid: number;
  sidecarGid: number;
  requireAgentRunAsUser: boolean;
  /** Secrets only the sidecar may read: every Secret any SessionPolicy of the namespace names. */
  protectedSecrets: readonly string[];
  /** Host names the sidecar resolves (targets, store, issuers, alerts): pods may not redefine them. */
  sidecarHosts?: readonly string[];
  scope?: CheckScope;
}

/**
 * Capabilities an agent container may add. Everything else is refused, by first principles: a
 * capability that changes the network namespace or sends below netfilter (NET_ADMIN, NET_RAW, BPF),
 * changes identity (SETUID, SETGID, SETPCAP, SETFCAP), reads or changes another process or the node
 * (SYS_PTRACE, SYS_ADMIN, SYS_MODULE, SYS_RAWIO, PERFMON, CHECKPOINT_RESTORE, IPC_OWNER, ...) or
 * ignores file permissions (DAC_OVERRIDE, DAC_READ_SEARCH) would let a process leave the pod's rules
 * or read what the sidecar holds. Unknown names are refused too. This is PSA baseline's list without
 * DAC_OVERRIDE, SETUID, SETGID, SETPCAP and SETFCAP.
 */
export const ALLOWED_CAPABILITIES = [
  'AUDIT_WRITE',
  'CHOWN',
  'FOWNER',
  'FSETID',
  'KILL',
  'MKNOD',
  'NET_BIND_SERVICE',
  'SYS_CHROOT',
] as const;

type AnyContainer = V1Container | V1EphemeralContainer;
export type ContainerKind = 'container' | 'initContainer' | 'ephemeralContainer';

/** `cap_net_admin`, `CAP_NET_ADMIN`, ` net_admin ` all name NET_ADMIN. */
export function normalizeCapability(cap: string): string {
  return cap.trim().toUpperCase().replace(/^CAP_/, '');
}

function isChaperoneName(name: string): boolean {
  return name === CONTAINERS.sidecar || name === CONTAINERS.init;
}

function finding(rule: Rule, text: string): string {
  return `[${rule}] ${text}`;
}

/** Volumes only chaperone's own containers mount: every reserved name except the agent token and kubeconfig. */
export function isSidecarOnlyVolume(name: string): boolean {
  return (
    name.startsWith(RESERVED_VOLUME_PREFIX) &&
    name !== VOLUMES.agentToken &&
    name !== VOLUMES.sshKnownHosts &&
    name !== VOLUMES.agentKube
  );
}

export function containerViolations(
  container: AnyContainer,
  kind: ContainerKind,
  podContext: V1PodSecurityContext | undefined,
  options: PodCheckOptions,
): string[] {
  const injected = (options.scope ?? 'injected') === 'injected';
  const where = `${kind} "${container.name}"`;
  const found: string[] = [];
  const sc = container.securityContext;
  if (isChaperoneName(container.name)) {
    found.push(finding(RULES.reservedName, `${where}: the name is reserved for chaperone's own containers`));
  }
  if (sc?.privileged) {
    found.push(
      finding(RULES.privileged, `${where}: privileged: true (could rewrite the pod's iptables rules)`),
    );
  }
  const added = (sc?.capabilities?.add ?? []).map(normalizeCapability);
  for (const cap of added) {
    if ((ALLOWED_CAPABILITIES as readonly string[]).includes(cap)) continue;
    found.push(
      finding(
        RULES.capability,
        `${where}: capability ${cap} added; only ${ALLOWED_CAPABILITIES.join(', ')} may be (others could undo capture, take the sidecar's identity or read its memory and files)`,
      ),
    );
  }
  if (sc?.windowsOptions?.hostProcess || podContext?.windowsOptions?.hostProcess) {
    found.push(
      finding(RULES.hostNamespace, `${where}: windowsOptions.hostProcess: true (runs on the node itself)`),
    );
  }
  if (sc?.procMount !== undefined && sc.procMount !== 'Default') {
    found.push(finding(RULES.hostNamespace, `${where}: procMount ${sc.procMount} (unmasks /proc)`));
  }
  if (injected && sc?.allowPrivilegeEscalation === true) {
    found.push(
      finding(
        RULES.privilegeEscalation,
        `${where}: allowPrivilegeEscalation: true (a setuid binary could take the sidecar's UID)`,
      ),
    );
  }
  if (injected) found.push(...identityViolations(where, sc, podContext, options));
  if (kind === 'ephemeralContainer') {
    const target = (container as V1EphemeralContainer).targetContainerName;
    if (target !== undefined && isChaperoneName(target)) {
      found.push(
        finding(
          RULES.chaperoneProcess,
          `${where}: targetContainerName ${target} would share the process namespace of chaperone's container (its memory and files)`,
        ),
      );
    }
  }
  for (const mount of container.volumeMounts ?? []) {
    if (isSidecarOnlyVolume(mount.name)) {
      found.push(
        finding(
          RULES.chaperoneVolume,
          `${where}: mounts volume ${mount.name}; volumes named ${RESERVED_VOLUME_PREFIX}* belong to chaperone's containers`,
        ),
      );
    }
  }
  for (const env of container.env ?? []) {
    const secret = env.valueFrom?.secretKeyRef?.name;
    if (secret && options.protectedSecrets.includes(secret)) {
      found.push(
        finding(RULES.protectedSecret, `${where}: env ${env.name} reads Secret ${secret}, ${WHY_PROTECTED}`),
      );
    }
  }
  for (const source of container.envFrom ?? []) {
    const secret = source.secretRef?.name;
    if (secret && options.protectedSecrets.includes(secret)) {
      found.push(
        finding(RULES.protectedSecret, `${where}: envFrom reads Secret ${secret}, ${WHY_PROTECTED}`),
      );
    }
  }
  return found;
}

function identityViolations(
  where: string,
  sc: AnyContainer['securityContext'],
  podContext: V1PodSecurityContext | undefined,
  options: PodCheckOptions,
): string[] {
  const found: string[] = [];
  const uid = sc?.runAsUser ?? podContext?.runAsUser;
  const gid = sc?.runAsGroup ?? podContext?.runAsGroup;
  const nonRoot = sc?.runAsNonRoot ?? podContext?.runAsNonRoot;
  if (uid === options.sidecarUid) {
    found.push(
      finding(
        RULES.sidecarIdentity,
        `${where}: runs as the sidecar's UID ${options.sidecarUid} (its traffic would not be captured)`,
      ),
    );
  }
  if (gid === options.sidecarGid) {
    found.push(
      finding(
        RULES.sidecarIdentity,
        `${where}: runs as the sidecar's GID ${options.sidecarGid} (its traffic would not be captured)`,
      ),
    );
  }
  if (uid === 0) {
    found.push(
      finding(
        RULES.rootUser,
        `${where}: runAsUser: 0 (root keeps the runtime's default capabilities, among them those to change its UID or open raw sockets); run as a non-root UID`,
      ),
    );
  }
  if (uid === undefined && options.requireAgentRunAsUser) {
    found.push(
      finding(
        RULES.unknownUser,
        `${where}: runAsUser is not set, so admission cannot tell the image's user from root or the sidecar's UID ${options.sidecarUid}; set securityContext.runAsUser on the pod or container`,
      ),
    );
  } else if (uid === undefined && nonRoot !== true) {
    found.push(
      finding(
        RULES.rootUser,
        `${where}: neither runAsUser nor runAsNonRoot: true is set, so the image's user could be root; set one of them`,
      ),
    );
  }
  return found;
}

const WHY_PROTECTED = 'which a SessionPolicy of this namespace gives to the chaperone sidecar only';

function podLevelViolations(spec: V1PodSpec, options: PodCheckOptions): string[] {
  const injected = (options.scope ?? 'injected') === 'injected';
  const found: string[] = [];
  const hostNs: Array<[boolean | undefined, string]> = [
    [spec.hostNetwork, "hostNetwork: true (the node's network namespace, outside chaperone's rules)"],
    [spec.hostPID, "hostPID: true (the node's processes, among them every sidecar's, would be visible)"],
    [spec.hostIPC, "hostIPC: true (the node's shared memory and semaphores)"],
  ];
  if (injected) {
    hostNs.push([
      spec.shareProcessNamespace,
      "shareProcessNamespace: true (the sidecar's /proc, memory and files would be reachable)",
    ]);
  }
  for (const [set, text] of hostNs) if (set) found.push(finding(RULES.hostNamespace, text));
  const sc = spec.securityContext;
  if (injected && (sc?.supplementalGroups ?? []).includes(options.sidecarGid)) {
    found.push(
      finding(
        RULES.sidecarIdentity,
        `securityContext.supplementalGroups contains the sidecar's GID ${options.sidecarGid}`,
      ),
    );
  }
  if (injected && sc?.fsGroup === options.sidecarGid) {
    found.push(
      finding(
        RULES.sidecarIdentity,
        `securityContext.fsGroup is the sidecar's GID ${options.sidecarGid} (every container would get it as a supplementary group)`,
      ),
    );
  }
  for (const volume of spec.volumes ?? []) {
    if (volume.hostPath) {
      found.push(
        finding(
          RULES.hostPath,
          `volume "${volume.name}": hostPath ${volume.hostPath.path} (the node's files, among them kubelet's copies of every pod's Secrets)`,
        ),
      );
    }
    const secrets = [
      volume.secret?.secretName,
      ...(volume.projected?.sources ?? []).map((s) => s.secret?.name),
      volume.csi?.nodePublishSecretRef?.name,
    ].filter((s): s is string => typeof s === 'string');
    for (const secret of secrets.filter((s) => options.protectedSecrets.includes(s))) {
      found.push(
        finding(RULES.protectedSecret, `volume "${volume.name}" mounts Secret ${secret}, ${WHY_PROTECTED}`),
      );
    }
  }
  if (injected) found.push(...nameResolutionViolations(spec, options.sidecarHosts ?? []));
  return found;
}

/** Lower case, no trailing dot: how resolvers compare names. */
export function normalizeHostName(name: string): string {
  return name.trim().toLowerCase().replace(/\.$/, '');
}

/**
 * The sidecar resolves upstream names through the pod's /etc/hosts and resolv.conf, and its own
 * traffic is exempt from the capture rules: a pod that redefines those names or picks its resolver
 * would send the sidecar (and its credentials) to an impostor.
 */
function nameResolutionViolations(spec: V1PodSpec, sidecarHosts: readonly string[]): string[] {
  const found: string[] = [];
  const hosts = sidecarHosts.map(normalizeHostName);
  // A name under one of the sidecar's hosts counts too (buckets under amazonaws.com, say).
  const touches = (name: string) => hosts.some((h) => name === h || name.endsWith(`.${h}`));
  for (const alias of spec.hostAliases ?? []) {
    for (const name of alias.hostnames ?? []) {
      if (touches(normalizeHostName(name))) {
        found.push(
          finding(
            RULES.nameResolution,
            `hostAliases maps ${name} (a host the sidecar connects to) to ${alias.ip}; the sidecar must resolve it through the cluster resolver`,
          ),
        );
      }
    }
  }
  if (spec.dnsPolicy === 'None') {
    found.push(
      finding(RULES.nameResolution, 'dnsPolicy: None (the pod would choose the resolver the sidecar uses)'),
    );
  }
  if ((spec.dnsConfig?.nameservers ?? []).length > 0) {
    found.push(
      finding(
        RULES.nameResolution,
        `dnsConfig.nameservers ${spec.dnsConfig!.nameservers!.join(', ')} (the sidecar would resolve upstream names there)`,
      ),
    );
  }
  if ((spec.dnsConfig?.searches ?? []).length > 0) {
    found.push(
      finding(
        RULES.nameResolution,
        `dnsConfig.searches ${spec.dnsConfig!.searches!.join(', ')} (a search domain could turn an upstream name into another)`,
      ),
    );
  }
  return found;
}

/** Findings on a pod without chaperone's own containers and volumes. */
export function podViolations(pod: V1Pod, options: PodCheckOptions): string[] {
  const spec = pod.spec;
  if (!spec) return ['pod has no spec'];
  const found = podLevelViolations(spec, options);
  for (const c of spec.initContainers ?? []) {
    found.push(...containerViolations(c, 'initContainer', spec.securityContext, options));
  }
  for (const c of spec.containers ?? []) {
    found.push(...containerViolations(c, 'container', spec.securityContext, options));
  }
  for (const c of spec.ephemeralContainers ?? []) {
    found.push(...containerViolations(c, 'ephemeralContainer', spec.securityContext, options));
  }
  return found;
}

/**
 * Probes of agent containers on ports the capture rules keep closed (kubelet probes from the node, a
 * new inbound connection): not a bypass, so a warning, not a refusal.
 */
export function closedProbePorts(pod: V1Pod, openTcpPorts: readonly number[]): string[] {
  const found: string[] = [];
  for (const c of [...(pod.spec?.initContainers ?? []), ...(pod.spec?.containers ?? [])]) {
    for (const [kind, probe] of [
      ['startupProbe', c.startupProbe],
      ['livenessProbe', c.livenessProbe],
      ['readinessProbe', c.readinessProbe],
    ] as const) {
      const raw = probe?.httpGet?.port ?? probe?.tcpSocket?.port ?? probe?.grpc?.port;
      if (raw === undefined) continue;
      const port = typeof raw === 'number' ? raw : c.ports?.find((p) => p.name === raw)?.containerPort;
      if (port !== undefined && !openTcpPorts.includes(port)) {
        found.push(`container "${c.name}": ${kind} on port ${port}`);
      }
    }
  }
  return found;
}

const HARDENING_DROPS = ['NET_ADMIN', 'NET_RAW', 'SETUID', 'SETGID'];

/**
 * Makes an agent container unable to gain privileges: no setuid binaries (no_new_privs) and, should
 * it run as root, no capability to change its UID to the sidecar's. Only adds, so re-applying is a
 * no-op and admission stays idempotent.
 */
export function hardenAgentContainer(container: AnyContainer): void {
  container.securityContext ??= {};
  const sc = container.securityContext;
  sc.allowPrivilegeEscalation ??= false;
  sc.capabilities ??= {};
  sc.capabilities.drop ??= [];
  const drop = sc.capabilities.drop;
  if (drop.map(normalizeCapability).includes('ALL')) return;
  for (const cap of HARDENING_DROPS) {
    if (!drop.map(normalizeCapability).includes(cap)) drop.push(cap);
  }
}
