// Test support for the ssh gateway: the shared sidecar harness (sidecar/testing/harness.ts) in front
// of the test environment's real OpenSSH sshd (upstream key pinned from its known_hosts, credentials
// only the sidecar reads), and the real OpenSSH clients (ssh, scp, sftp) with the token as the
// password (SSH_ASKPASS) and the sidecar's host key in their known_hosts, or ssh2's client.
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import ssh2 from 'ssh2';
import { run } from '../../../test/env/net.ts';
import type { SshdInfo } from '../../../test/env/types.ts';
import type { SidecarConfigInput } from '../../config/index.ts';
import {
  openWorkspace,
  type RunResult,
  runProcess,
  type SidecarHarness,
  startSidecarHarness,
  testLogger,
} from '../../testing/harness.ts';

export { AGENT_SUBJECT, kinds, type RunResult, runProcess, TOKEN_AUDIENCE } from '../../testing/harness.ts';

export interface SshHarness extends SidecarHarness {
  sshd: SshdInfo;
  /** known_hosts for agents: the sidecar's host key for [127.0.0.1]:port. */
  knownHostsPath: string;
  /** Options for ssh/scp/sftp: token by askpass, strict host key checking against the sidecar key. */
  clientOptions(token?: string): { args: string[]; env: NodeJS.ProcessEnv };
  ssh(args: string[], opts?: { token?: string; stdin?: string; timeoutMs?: number }): Promise<RunResult>;
  run(
    command: string,
    args: string[],
    opts?: { token?: string; stdin?: string; timeoutMs?: number },
  ): Promise<RunResult>;
  /** ssh2's client logged in through the sidecar (the token as the password), any host key accepted. */
  connect(token?: string): Promise<ssh2.Client>;
}

export interface SshHarnessOptions {
  config?: Partial<SidecarConfigInput>;
  /** Pin these upstream host keys instead of the test sshd's. */
  upstreamHostKeys?: string[];
  allowEnv?: string[];
  allowDirectTcpip?: { host: string; port: number }[];
  /** ssh.maskOutput (with `config.masking` detectors). */
  maskOutput?: boolean;
  /** Log the sidecar in upstream with the private key instead of the password. */
  upstreamKey?: boolean;
  /** More identity settings (liveness, offboarding) next to the harness's issuer. */
  identity?: Record<string, unknown>;
}

export async function startSshHarness(sshd: SshdInfo, options: SshHarnessOptions = {}): Promise<SshHarness> {
  const ws = await openWorkspace(
    'ssh',
    options.upstreamKey
      ? { username: sshd.user, privateKey: await readFile(sshd.privateKeyPath) }
      : { username: sshd.user, password: sshd.password },
  );
  const { dir, listenPort } = ws;
  const hostKeyFile = join(dir, 'ssh_host_ed25519_key');
  await run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'chaperone-sidecar', '-f', hostKeyFile]);
  const sidecarPub = (await readFile(`${hostKeyFile}.pub`, 'utf8')).trim().split(' ');
  const upstreamLines = (await readFile(sshd.knownHostsPath, 'utf8'))
    .trim()
    .split('\n')
    .map((l) => l.split(' ').slice(1, 3).join(' '));
  const h = await startSidecarHarness(ws, {
    target: {
      name: 'build-host',
      protocol: 'ssh',
      upstream: { host: sshd.host, port: sshd.port },
      ssh: {
        upstreamHostKeys: options.upstreamHostKeys ?? upstreamLines,
        allowEnv: options.allowEnv ?? [],
        allowDirectTcpip: options.allowDirectTcpip ?? [],
        ...(options.maskOutput ? { maskOutput: true } : {}),
        hostKeyFile,
      },
    },
    policy: { name: 'test-policy', generation: 1 },
    shutdownGraceSeconds: 5,
    ...(options.identity ? { identity: options.identity } : {}),
    ...(options.config ? { config: options.config } : {}),
    logger: testLogger('warn'),
  });
  const knownHostsPath = join(dir, 'agent_known_hosts');
  await writeFile(knownHostsPath, `[127.0.0.1]:${listenPort} ${sidecarPub[0]} ${sidecarPub[1]}\n`);
  const askpass = join(dir, 'askpass.sh');
  await writeFile(askpass, '#!/bin/sh\nprintf "%s\\n" "$CHAPERONE_TOKEN"\n', { mode: 0o700 });
  const clientOptions = (t = ws.token) => ({
    args: [
      '-o',
      `UserKnownHostsFile=${knownHostsPath}`,
      '-o',
      'GlobalKnownHostsFile=/dev/null',
      '-o',
      'StrictHostKeyChecking=yes',
      '-o',
      'PreferredAuthentications=password',
      '-o',
      'PubkeyAuthentication=no',
      '-o',
      'NumberOfPasswordPrompts=1',
      '-o',
      'ConnectTimeout=10',
    ],
    env: {
      PATH: process.env.PATH,
      HOME: dir,
      SSH_ASKPASS: askpass,
      SSH_ASKPASS_REQUIRE: 'force',
      CHAPERONE_TOKEN: t,
      LANG: 'C',
    },
  });
  const runWith = (
    command: string,
    args: string[],
    opts: { token?: string; stdin?: string; timeoutMs?: number } = {},
  ) => {
    const o = clientOptions(opts.token);
    return runProcess(command, [...o.args, ...args], {
      env: o.env,
      stdin: opts.stdin,
      timeoutMs: opts.timeoutMs,
    });
  };
  return {
    ...h,
    sshd,
    knownHostsPath,
    clientOptions,
    ssh: (args, opts) => runWith('ssh', ['-p', String(listenPort), ...args], opts),
    run: runWith,
    async connect(token = ws.token) {
      const client = new ssh2.Client();
      await new Promise<void>((resolve, reject) => {
        client.once('ready', () => resolve()).once('error', reject);
        client.connect({
          host: '127.0.0.1',
          port: listenPort,
          username: 'agent',
          password: token,
          hostVerifier: () => true,
        });
      });
      return client;
    },
  };
}

/** The bytes of a channel's stream, decoded from its terminal events. */
export function streamText(
  events: { kind: string; payload: Record<string, unknown> }[],
  kind: string,
  stream: string,
): string {
  return Buffer.concat(
    events
      .filter((e) => e.kind === kind && e.payload.stream === stream)
      .map((e) => Buffer.from(String(e.payload.data), 'base64')),
  ).toString('utf8');
}
