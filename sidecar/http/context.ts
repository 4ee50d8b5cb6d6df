// What an HTTP or Kubernetes session needs from the process: the target's policy snapshot (swapped
// on config reload) and the process-wide services (shared with the PostgreSQL gateway).
import type { SidecarConfig, SidecarTarget } from '../config/index.ts';
import { loopbackServingCert, type ServingCert } from '../kube/serving-cert.ts';
import type { GatewayServices } from '../postgres/context.ts';
import type { AlertSink, ApprovalBackend, IdentityVerifier } from '../server/modules.ts';
import { createMasker } from '../server/modules.ts';
import type { SharedRuntime } from '../server/runtime.ts';
import { createHttpGuard, type HttpGuard } from './guard.ts';
import { BodyMasker } from './json-mask.ts';
import { createUpstream, type HttpUpstream } from './upstream.ts';

export type { GatewayServices };

export interface HttpOptions {
  identityHeader: string;
  bodyCapBytes: number;
  maskCapBytes: number;
}

export interface HttpRuntime {
  target: SidecarTarget;
  kube: boolean;
  policy: { name: string; namespace?: string; generation?: number };
  http: HttpOptions;
  kubernetes: { upstreamAuth: 'token' | 'impersonate'; allowSecretData: boolean };
  verifier: IdentityVerifier;
  guard: HttpGuard;
  masker: BodyMasker;
  approvals: ApprovalBackend;
  approvalTimeoutMs: number;
  alerts: AlertSink;
  upstream: HttpUpstream;
  /** Kubernetes targets: the loopback TLS certificate agents trust through their kubeconfig. */
  serving?: ServingCert;
  /** recording.durability strict: no request goes upstream before its event is on disk. */
  strictRecording: boolean;
}

export async function buildHttpRuntime(
  config: SidecarConfig,
  target: SidecarTarget,
  shared: Pick<SharedRuntime, 'verifier' | 'alerts' | 'approvals'>,
  strictRecording: boolean,
): Promise<HttpRuntime> {
  const kube = target.protocol === 'kubernetes';
  return {
    target,
    kube,
    policy: config.policy,
    http: {
      identityHeader: target.http?.identityHeader ?? 'authorization',
      bodyCapBytes: target.http?.bodyCapBytes ?? 65_536,
      maskCapBytes: target.http?.maskCapBytes ?? 8 * 1024 * 1024,
    },
    kubernetes: {
      upstreamAuth: target.kubernetes?.upstreamAuth ?? 'token',
      allowSecretData: target.kubernetes?.allowSecretData ?? false,
    },
    verifier: shared.verifier,
    guard: createHttpGuard(config.guardrails, target.name, kube),
    masker: new BodyMasker(createMasker(config.masking), config.masking),
    approvals: shared.approvals,
    approvalTimeoutMs: config.approvals.timeoutSeconds * 1000,
    alerts: shared.alerts,
    upstream: await createUpstream(target),
    strictRecording,
    ...(kube ? { serving: await loopbackServingCert() } : {}),
  };
}
