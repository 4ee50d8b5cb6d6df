// SessionPolicy -> sidecar config: a pure function. Secret references become the paths where the
// webhook mounts those Secrets into the sidecar, so the config never carries a secret value.
import { SIDECAR_PATHS, type SidecarConfig, sidecarConfigSchema } from '../../sidecar/config/index.ts';
import { ALERTS_SECRET_DIR, IN_CLUSTER_CA_FILE, upstreamCaDir } from './paths.ts';

import { PolicyInvalidError, parsePolicySpec, type SessionPolicyObject, semanticProblems } from './policy.ts';

export interface SidecarConfigOptions {
  /** How requireApproval rules ask for a decision; in a cluster: SessionApproval objects. */
  approvalsBackend?: 'none' | 'local' | 'kubernetes';
  /** Port of the sidecar's /healthz, /readyz and /metrics (must match the webhook's probe). */
  adminPort?: number;
  /** CA bundle used to reach the cluster's own issuer (kubernetes: true). */
  kubernetesCaFile?: string;
  /** Identifier of the signing key, recorded in segment manifests. */
  keyId?: string;
}

export const DEFAULT_ADMIN_PORT = 15090;

export function renderSidecarConfig(
  policy: SessionPolicyObject,
  options: SidecarConfigOptions = {},
): SidecarConfig {
  const spec = parsePolicySpec(policy);
  const adminPort = options.adminPort ?? DEFAULT_ADMIN_PORT;
  const problems = semanticProblems(policy.metadata.name, spec, { adminPort });
  if (problems.length > 0) throw new PolicyInvalidError('InvalidSpec', problems.join('; '));

  const { credentialsSecret: storeCredentials, ...store } = spec.recording.store;
  const { signingKeySecret: _signingKey, store: _store, ...recording } = spec.recording;
  const alerts = spec.alerts
    ? (() => {
        const { webhookUrlSecret, ...rest } = spec.alerts;
        return {
          ...rest,
          ...(webhookUrlSecret ? { webhookUrlFile: `${ALERTS_SECRET_DIR}/${webhookUrlSecret.key}` } : {}),
        };
      })()
    : undefined;

  const config = {
    apiVersion: 'chaperone.dev/sidecar-v1' as const,
    policy: {
      name: policy.metadata.name,
      ...(policy.metadata.namespace !== undefined ? { namespace: policy.metadata.namespace } : {}),
      ...(policy.metadata.generation !== undefined ? { generation: policy.metadata.generation } : {}),
    },
    adminPort,
    targets: spec.targets.map(({ credentialsSecret, tls, ...target }) => ({
      ...target,
      ...(target.protocol === 'kubernetes'
        ? {
            agentKubeconfig: {
              file: SIDECAR_PATHS.agentKubeconfigFile(target.name),
              tokenFile: SIDECAR_PATHS.agentTokenFile,
              ...(policy.metadata.namespace !== undefined ? { namespace: policy.metadata.namespace } : {}),
            },
          }
        : {}),
      ...(credentialsSecret ? { credentialsDir: SIDECAR_PATHS.credentialsDir(target.name) } : {}),
      tls: {
        mode: tls?.mode ?? (tls?.caSecret ? 'verify-full' : 'disable'),
        ...(tls?.allowUnverifiedPassword ? { allowUnverifiedPassword: true } : {}),
        ...(tls?.caSecret ? { caFile: `${upstreamCaDir(target.name)}/${tls.caSecret.key}` } : {}),
        ...(tls?.serverName !== undefined ? { serverName: tls.serverName } : {}),
      },
    })),
    identity: {
      ...spec.identity,
      issuers: spec.identity.issuers.map(({ introspection, ...issuer }) => ({
        ...(issuer.kubernetes
          ? { ...issuer, caFile: options.kubernetesCaFile ?? IN_CLUSTER_CA_FILE }
          : issuer),
        // Identity liveness: the introspection client secret, as a file the webhook mounts.
        ...(introspection
          ? {
              introspection: {
                ...(introspection.endpoint ? { endpoint: introspection.endpoint } : {}),
                clientId: introspection.clientId,
                clientSecretFile: `${SIDECAR_PATHS.introspectionDir(introspection.clientSecretSecret.name)}/${introspection.clientSecretSecret.key}`,
              },
            }
          : {}),
      })),
    },
    guardrails: spec.guardrails,
    masking: spec.masking,
    approvals: { ...spec.approvals, backend: options.approvalsBackend ?? 'kubernetes' },
    ...(alerts ? { alerts } : {}),
    recording: {
      ...recording,
      store: {
        ...store,
        ...(storeCredentials ? { credentialsDir: SIDECAR_PATHS.storeCredentialsDir } : {}),
      },
      signingKeyFile: SIDECAR_PATHS.signingKeyFile,
      ...(options.keyId !== undefined ? { keyId: options.keyId } : {}),
      spoolDir: SIDECAR_PATHS.spoolDir,
    },
  };
  // The sidecar validates with the same schema at start; refusing here keeps a bad config out of
  // the ConfigMap (the last good one stays in place).
  const checked = sidecarConfigSchema.safeParse(config);
  if (!checked.success) {
    throw new PolicyInvalidError(
      'InvalidSpec',
      `rendered sidecar config is invalid: ${checked.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`,
    );
  }
  return checked.data;
}

/** The ConfigMap value: stable key order (the schema's), trailing newline. */
export function serializeSidecarConfig(config: SidecarConfig): string {
  return `${JSON.stringify(config, null, 2)}\n`;
}
