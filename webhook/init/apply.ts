// Applies rendered capture rules in the current network namespace. Idempotent: previous jumps to the
// CHAPERONE_OUTPUT and CHAPERONE_INPUT chains are removed, then iptables-restore --noflush
// redeclares (and so flushes) the chains and fills them; rules of anyone else (another mesh, the
// CNI) are left alone.
import { spawn } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { CHAIN, INPUT_CHAIN } from '../iptables.ts';

export interface Family {
  name: 'ipv4' | 'ipv6';
  iptables: string;
  restore: string;
  rules: string;
}

export interface CommandResult {
  code: number;
  stdout: string;
  stderr: string;
}

export function run(command: string, args: readonly string[], stdin?: string): Promise<CommandResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: [stdin === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout!.setEncoding('utf8').on('data', (d: string) => {
      stdout += d;
    });
    child.stderr!.setEncoding('utf8').on('data', (d: string) => {
      stderr += d;
    });
    child.on('error', reject);
    child.on('close', (code) => resolve({ code: code ?? 1, stdout, stderr }));
    if (stdin !== undefined) {
      // A command that exits early surfaces through its exit code, not as an EPIPE crash.
      child.stdin!.on('error', () => {});
      child.stdin!.end(stdin);
    }
  });
}

async function removeJumps(family: Family): Promise<number> {
  let removed = 0;
  const jumps = [
    ['nat', 'OUTPUT', CHAIN],
    ['filter', 'OUTPUT', CHAIN],
    ['filter', 'INPUT', INPUT_CHAIN],
  ] as const;
  for (const [table, hook, chain] of jumps) {
    // -D fails once no jump is left; a bounded loop guards against a misbehaving binary.
    for (let i = 0; i < 100; i++) {
      const result = await run(family.iptables, ['-w', '5', '-t', table, '-D', hook, '-j', chain]);
      if (result.code !== 0) break;
      removed++;
    }
  }
  return removed;
}

export async function applyFamily(family: Family): Promise<void> {
  await removeJumps(family);
  const result = await run(family.restore, ['-w', '5', '--noflush'], family.rules);
  if (result.code !== 0) {
    throw new Error(`${family.restore} failed (exit ${result.code}): ${result.stderr.trim()}`);
  }
}

/**
 * Whether this kernel speaks IPv6 at all. Opening an IPv6 socket loads the ipv6 module where it is
 * one, so no one can bring IPv6 up after the rules were applied; only EAFNOSUPPORT (no IPv6 in this
 * kernel) skips the IPv6 rules. Any other answer applies them (fail closed).
 */
export async function ipv6Enabled(): Promise<boolean> {
  const socket = createSocket({ type: 'udp6' });
  try {
    await new Promise<void>((resolve, reject) => {
      socket.once('error', reject);
      socket.bind(0, '::', () => resolve());
    });
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code !== 'EAFNOSUPPORT';
  } finally {
    try {
      socket.close();
    } catch {
      // never bound
    }
  }
}
