// What a postgres session needs from the process: the current policy snapshot of its target (swapped
// on config reload; a session reads it per statement) and process-wide services.
import { randomInt } from 'node:crypto';
import type { Logger } from 'pino';
import type { SidecarTarget } from '../config/index.ts';
import type { GatewayMetrics } from '../server/metrics.ts';
import type {
  AlertSink,
  ApprovalBackend,
  IdentityVerifier,
  Masker,
  PodIdentity,
  Recorder,
  SqlGuard,
} from '../server/modules.ts';
import { DEFAULT_MAX_UNSETTLED_APPENDS } from '../server/modules.ts';

export interface PostgresLimits {
  /** Largest frontend message accepted (64 MiB default); larger ones close the session. */
  maxMessageBytes: number;
  /** Rows and bytes of each statement's result kept in the recording (masked as the agent saw them). */
  sampleRows: number;
  sampleBytes: number;
  /** Deadline for the agent to complete startup and send its token. */
  startupTimeoutMs: number;
  /** Deadline for connecting and logging in upstream. */
  upstreamLoginTimeoutMs: number;
  /**
   * Unsettled recording appends per session before the session waits for the spool. Also what a
   * crash of the sidecar can lose: passed to the recorder, which declares it in crash gaps.
   */
  maxPendingAppends: number;
}

export const DEFAULT_LIMITS: PostgresLimits = {
  maxMessageBytes: 64 * 1024 * 1024,
  sampleRows: 20,
  sampleBytes: 16 * 1024,
  startupTimeoutMs: 30_000,
  upstreamLoginTimeoutMs: 15_000,
  maxPendingAppends: DEFAULT_MAX_UNSETTLED_APPENDS,
};

export interface PostgresRuntime {
  target: SidecarTarget;
  policy: { name: string; namespace?: string; generation?: number };
  verifier: IdentityVerifier;
  guard: SqlGuard;
  masker: Masker;
  /** False when no masking rule exists: DataRows are then never decoded. */
  maskingConfigured: boolean;
  /** masking.keepOriginals: the recording also holds sampled rows as they were before masking. */
  keepOriginals: boolean;
  /** recording.durability strict: a statement goes upstream only once its pg.query event is durable. */
  strictRecording: boolean;
  approvals: ApprovalBackend;
  approvalTimeoutMs: number;
  alerts: AlertSink;
  limits: PostgresLimits;
}

export interface GatewayServices {
  recorder: Recorder;
  pod: PodIdentity;
  logger: Logger;
  metrics: GatewayMetrics;
  cancels: CancelRegistry;
  sidecarVersion: string;
}

export interface Cancellable {
  cancel(): void;
}

/** The (pid, secret) pairs the sidecar hands to agents, each mapped to its session. */
export class CancelRegistry {
  private readonly sessions = new Map<number, { secret: number; session: Cancellable }>();

  register(session: Cancellable): { pid: number; secret: number } {
    let pid: number;
    do pid = randomInt(1, 2 ** 31 - 1);
    while (this.sessions.has(pid));
    const secret = randomInt(-(2 ** 31), 2 ** 31 - 1);
    this.sessions.set(pid, { secret, session });
    return { pid, secret };
  }

  unregister(pid: number): void {
    this.sessions.delete(pid);
  }

  /** The session a CancelRequest names, if the secret matches (a wrong secret is ignored, as PostgreSQL does). */
  find(pid: number, secret: number): Cancellable | undefined {
    const entry = this.sessions.get(pid);
    return entry && entry.secret === secret ? entry.session : undefined;
  }
}
