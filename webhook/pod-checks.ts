// What makes a pod able to bypass capture, checked on the pod as the user wrote it (after stripping a
// previous injection). Every finding is reported at once, each naming the field to change.
import type { V1Container, V1EphemeralContainer, V1Pod, V1PodSecurityContext } from '@kubernetes/client-node';
import { CONTAINERS } from './constants.ts';

export interface PodCheckOptions {
  sidecarUid: number;
  sidecarGid: number;
  requireAgentRunAsUser: boolean;
  /** Secrets only the sidecar may read (upstream credentials, signing key, store credentials). */
  protectedSecrets: readonly string[];
  policyName: string;
}

/** Capabilities that would let an agent change the netfilter rules or become the sidecar's user. */
export const FORBIDDEN_CAPABILITIES = [
  'NET_ADMIN',
  'NET_RAW',
  'SYS_ADMIN',
  'SETUID',
  'SETGID',
  'SYS_PTRACE',
  'BPF',
  'ALL',
];

type AnyContainer = V1Container | V1EphemeralContainer;
export type ContainerKind = 'container' | 'initContainer' | 'ephemeralContainer';

export function normalizeCapability(cap: string): string {
  return cap.toUpperCase().replace(/^CAP_/, '');
}

export function containerViolations(
  container: AnyContainer,
  kind: ContainerKind,
  podContext: V1PodSecurityContext | undefined,
  options: PodCheckOptions,
): string[] {
  const where = `${kind} "${container.name}"`;
  const found: string[] = [];
  const sc = container.securityContext;
  if (
    kind !== 'initContainer' &&
    (container.name === CONTAINERS.sidecar || container.name === CONTAINERS.init)
  ) {
    found.push(`${where}: the name is reserved for chaperone`);
  }
  if (sc?.privileged) found.push(`${where}: privileged: true (could rewrite the pod's iptables rules)`);
  const added = (sc?.capabilities?.add ?? []).map(normalizeCapability);
  for (const cap of added.filter((c) => FORBIDDEN_CAPABILITIES.includes(c))) {
    found.push(`${where}: capability ${cap} added (could undo capture or take the sidecar's identity)`);
  }
  if (sc?.allowPrivilegeEscalation === true) {
    found.push(`${where}: allowPrivilegeEscalation: true (a setuid binary could take the sidecar's UID)`);
  }
  const uid = sc?.runAsUser ?? podContext?.runAsUser;
  const gid = sc?.runAsGroup ?? podContext?.runAsGroup;
  if (uid === options.sidecarUid) {
    found.push(
      `${where}: runs as the sidecar's UID ${options.sidecarUid} (its traffic would not be captured)`,
    );
  }
  if (gid === options.sidecarGid) {
    found.push(
      `${where}: runs as the sidecar's GID ${options.sidecarGid} (its traffic would not be captured)`,
    );
  }
  if (uid === undefined && options.requireAgentRunAsUser) {
    found.push(
      `${where}: runAsUser is not set, so admission cannot tell the image's user from the sidecar's UID ${options.sidecarUid}; set securityContext.runAsUser on the pod or container`,
    );
  }
  for (const env of container.env ?? []) {
    const secret = env.valueFrom?.secretKeyRef?.name;
    if (secret && options.protectedSecrets.includes(secret)) {
      found.push(`${where}: env ${env.name} reads Secret ${secret}, ${protectedWhy(options)}`);
    }
  }
  for (const source of container.envFrom ?? []) {
    const secret = source.secretRef?.name;
    if (secret && options.protectedSecrets.includes(secret)) {
      found.push(`${where}: envFrom reads Secret ${secret}, ${protectedWhy(options)}`);
    }
  }
  return found;
}

function protectedWhy(options: PodCheckOptions): string {
  return `which SessionPolicy ${options.policyName} gives to the chaperone sidecar only`;
}

/** Findings on a pod without chaperone's own containers and volumes. */
export function podViolations(pod: V1Pod, options: PodCheckOptions): string[] {
  const spec = pod.spec;
  if (!spec) return ['pod has no spec'];
  const found: string[] = [];
  if (spec.hostNetwork) {
    found.push(
      "hostNetwork: true (the pod would use the node's network namespace, outside chaperone's rules)",
    );
  }
  if (spec.hostPID) found.push("hostPID: true (could reach the sidecar's processes)");
  const groups = spec.securityContext?.supplementalGroups ?? [];
  if (groups.includes(options.sidecarGid)) {
    found.push(`securityContext.supplementalGroups contains the sidecar's GID ${options.sidecarGid}`);
  }
  for (const c of spec.initContainers ?? []) {
    found.push(...containerViolations(c, 'initContainer', spec.securityContext, options));
  }
  for (const c of spec.containers ?? []) {
    found.push(...containerViolations(c, 'container', spec.securityContext, options));
  }
  for (const c of spec.ephemeralContainers ?? []) {
    found.push(...containerViolations(c, 'ephemeralContainer', spec.securityContext, options));
  }
  for (const volume of spec.volumes ?? []) {
    const secrets = [
      volume.secret?.secretName,
      ...(volume.projected?.sources ?? []).map((s) => s.secret?.name),
    ].filter((s): s is string => typeof s === 'string');
    for (const secret of secrets.filter((s) => options.protectedSecrets.includes(s))) {
      found.push(`volume "${volume.name}" mounts Secret ${secret}, ${protectedWhy(options)}`);
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
