// What an ssh session needs from the process: its target's policy snapshot (swapped on config
// reload) on top of what the session core reads, and the limits of the gateway.
import type { SidecarTarget } from '../config/index.ts';
import type { RowMasker } from '../policy/index.ts';
import type { CoreRuntime, CoreServices } from '../session/index.ts';
import type { SshGuard } from './guard.ts';

export interface SshLimits {
  /** Deadline for the agent to authenticate (ssh2's own handshake deadline applies before). */
  loginTimeoutMs: number;
  /** Deadline for connecting and logging in upstream. */
  upstreamLoginTimeoutMs: number;
  maxPendingAppends: number;
  /** Longest shell line kept for the guard; a longer one is refused at Enter. */
  maxLineBytes: number;
}

export const DEFAULT_SSH_LIMITS: SshLimits = {
  loginTimeoutMs: 30_000,
  upstreamLoginTimeoutMs: 15_000,
  maxPendingAppends: 1024,
  maxLineBytes: 16 * 1024,
};

export interface SshRuntime extends CoreRuntime {
  target: SidecarTarget;
  guard: SshGuard;
  /** The sidecar's own host key (OpenSSH or PEM private key). */
  hostKey: Buffer;
  /** The upstream's accepted host keys, as SSH wire-format blobs. */
  upstreamHostKeys: Buffer[];
  /** Environment variable names the agent may pass. */
  allowEnv: ReadonlySet<string>;
  /** direct-tcpip destinations ("host:port") the agent may open through the upstream. */
  allowDirectTcpip: ReadonlySet<string>;
  limits: SshLimits;
  /** With ssh.maskOutput and masking detectors: masks shell and exec output (output-mask.ts). */
  outputMask?: { row: RowMasker; keepOriginals: boolean };
}

export type SshServices = CoreServices;
