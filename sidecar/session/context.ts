// What a session of any protocol needs from the process: the policy snapshot of its target (swapped
// on config reload; read per command) and the process-wide services. Protocol runtimes extend these.
import type { Logger } from 'pino';
import type { Protocol } from '../../crds/index.ts';
import type { GatewayMetrics } from '../server/metrics.ts';
import type {
  AlertSink,
  ApprovalBackend,
  IdentityVerifier,
  PodIdentity,
  Recorder,
} from '../server/modules.ts';

/** The part of a target's policy snapshot the session core reads. */
export interface CoreRuntime {
  target: { name: string; upstream: { host: string; port: number } };
  policy: { name: string; namespace?: string; generation?: number };
  verifier: IdentityVerifier;
  approvals: ApprovalBackend;
  approvalTimeoutMs: number;
  alerts: AlertSink;
}

/** Process-wide services every gateway gets. */
export interface CoreServices {
  recorder: Recorder;
  pod: PodIdentity;
  logger: Logger;
  metrics: GatewayMetrics;
  sidecarVersion: string;
}

export type { Protocol };
