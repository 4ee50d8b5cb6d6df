// Builds an ssh target's policy snapshot from the sidecar config. An ssh target without pinned
// upstream host keys or without its own host key is refused: the sidecar never trusts on first use.
import { readFile } from 'node:fs/promises';
import type { SidecarConfig, SidecarTarget } from '../config/index.ts';
import { createMasker, PG_TYPE } from '../policy/index.ts';
import type { CoreRuntime } from '../session/index.ts';
import { DEFAULT_SSH_LIMITS, type SshLimits, type SshRuntime } from './context.ts';
import { createSshGuard } from './guard.ts';
import { parseHostKeys } from './upstream.ts';

export async function buildSshRuntime(
  config: SidecarConfig,
  target: SidecarTarget,
  shared: Omit<CoreRuntime, 'target' | 'policy' | 'approvalTimeoutMs'>,
  limits: Partial<SshLimits> = {},
): Promise<SshRuntime> {
  const ssh = target.ssh;
  if (!ssh)
    throw new Error(`ssh target ${target.name} has no ssh.upstreamHostKeys: refusing to trust any host key`);
  const hostKey = await readFile(ssh.hostKeyFile).catch((err: Error) => {
    throw new Error(
      `cannot read the ssh host key of target ${target.name} (${ssh.hostKeyFile}): ${err.message}`,
    );
  });
  return {
    target,
    policy: config.policy,
    verifier: shared.verifier,
    approvals: shared.approvals,
    approvalTimeoutMs: config.approvals.timeoutSeconds * 1000,
    alerts: shared.alerts,
    guard: createSshGuard(config.guardrails, target.name),
    hostKey,
    upstreamHostKeys: parseHostKeys(ssh.upstreamHostKeys),
    allowEnv: new Set(ssh.allowEnv),
    allowDirectTcpip: new Set(ssh.allowDirectTcpip.map((d) => `${d.host}:${d.port}`)),
    limits: { ...DEFAULT_SSH_LIMITS, ...limits },
    ...(ssh.maskOutput && config.masking.detectors.length > 0
      ? {
          outputMask: {
            // Detectors only: column rules name SQL columns and JSON fields, terminal output has none.
            row: createMasker({ ...config.masking, columns: [] }).forColumns([
              { name: 'terminal', dataTypeID: PG_TYPE.text, format: 'text' },
            ]),
            keepOriginals: config.masking.keepOriginals,
          },
        }
      : {}),
  };
}
