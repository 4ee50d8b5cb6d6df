// The sidecar's SSH host key, one per SessionPolicy with ssh targets: an Ed25519 key the operator
// generates once into a Secret (mounted only into the sidecar), and a known_hosts ConfigMap agents
// mount so that they verify the sidecar instead of turning host-key checking off.
import ssh2 from 'ssh2';
import type { SessionPolicySpec } from '../../crds/index.ts';
import { type ChildMetadata, childMetadata } from './children.ts';
import { sshHostKeySecretName, sshKnownHostsName } from './labels.ts';
import type { SessionPolicyObject } from './policy.ts';

export const SSH_HOST_KEY_KEYS = { privateKey: 'privateKey', publicKey: 'publicKey' } as const;
export const KNOWN_HOSTS_KEY = 'known_hosts';

export interface RenderedSecret {
  apiVersion: 'v1';
  kind: 'Secret';
  metadata: ChildMetadata;
  type: 'Opaque';
  stringData: Record<string, string>;
}

export function hasSshTargets(spec: Pick<SessionPolicySpec, 'targets'>): boolean {
  return spec.targets.some((t) => t.protocol === 'ssh');
}

/** A new host key Secret (OpenSSH private key and its public line). */
export function renderSshHostKeySecret(policy: SessionPolicyObject): RenderedSecret {
  const key = ssh2.utils.generateKeyPairSync('ed25519', { comment: `chaperone-${policy.metadata.name}` });
  return {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: { ...childMetadata(policy), name: sshHostKeySecretName(policy.metadata.name) },
    type: 'Opaque',
    stringData: { [SSH_HOST_KEY_KEYS.privateKey]: key.private, [SSH_HOST_KEY_KEYS.publicKey]: key.public },
  };
}

/** known_hosts lines: the sidecar's key for 127.0.0.1 and localhost on every ssh listen port. */
export function knownHostsLines(spec: Pick<SessionPolicySpec, 'targets'>, publicKey: string): string {
  const [type, blob] = publicKey.trim().split(/\s+/);
  return spec.targets
    .filter((t) => t.protocol === 'ssh')
    .map((t) => `[127.0.0.1]:${t.listenPort},[localhost]:${t.listenPort} ${type} ${blob}\n`)
    .join('');
}

export function renderKnownHostsConfigMap(
  policy: SessionPolicyObject,
  spec: Pick<SessionPolicySpec, 'targets'>,
  publicKey: string,
) {
  return {
    apiVersion: 'v1' as const,
    kind: 'ConfigMap' as const,
    metadata: { ...childMetadata(policy), name: sshKnownHostsName(policy.metadata.name) },
    data: { [KNOWN_HOSTS_KEY]: knownHostsLines(spec, publicKey) },
  };
}
