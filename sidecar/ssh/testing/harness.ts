// Test support for the ssh gateway: a sidecar in this process in front of the test environment's
// real OpenSSH sshd (upstream key pinned from its known_hosts, credentials only the sidecar reads),
// a token issuer the sidecar trusts, a file:// store read back with the recording reader, and the
// real OpenSSH clients (ssh, scp, sftp) with the token as the password (SSH_ASKPASS) and the
// sidecar's host key in their known_hosts.
import { spawn } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { freePort, run } from '../../../test/env/net.ts';
import type { SshdInfo } from '../../../test/env/types.ts';
import { type SidecarConfigInput, sidecarConfigSchema } from '../../config/index.ts';
import { type LocalIssuer, startLocalIssuer } from '../../identity/testing/local-issuer.ts';
import { DEFAULT_LIMITS } from '../../postgres/context.ts';
import { generateSigningKey, listSessions, openStore, readSession } from '../../server/modules.ts';
import { Sidecar } from '../../server/sidecar.ts';

export interface RecordedEventLike {
  kind: string;
  payload: Record<string, unknown>;
  monoNs?: string;
}

export interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

export interface SshHarness {
  sidecar: Sidecar;
  port: number;
  dir: string;
  sshd: SshdInfo;
  token: string;
  issuer: LocalIssuer;
  approvalsDir: string;
  storeUrl: string;
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
  sessionIds(): Promise<string[]>;
  events(sessionId: string): Promise<RecordedEventLike[]>;
  waitForSession(
    match: (events: RecordedEventLike[]) => boolean,
    timeoutMs?: number,
  ): Promise<RecordedEventLike[]>;
  close(): Promise<void>;
}

export const AGENT_SUBJECT = 'agent-alice';
export const TOKEN_AUDIENCE = 'chaperone';

export function runProcess(
  command: string,
  args: string[],
  opts: { env?: NodeJS.ProcessEnv; stdin?: string; timeoutMs?: number },
): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { env: opts.env, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => {
      stdout += d.toString();
    });
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 60_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
    child.stdin.end(opts.stdin ?? '');
  });
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
  const dir = await mkdtemp(join(tmpdir(), 'chaperone-ssh-'));
  const credentialsDir = join(dir, 'credentials');
  const approvalsDir = join(dir, 'approvals');
  await mkdir(credentialsDir, { recursive: true });
  await mkdir(approvalsDir, { recursive: true });
  await writeFile(join(credentialsDir, 'username'), `${sshd.user}\n`, { mode: 0o600 });
  if (options.upstreamKey)
    await writeFile(join(credentialsDir, 'privateKey'), await readFile(sshd.privateKeyPath), { mode: 0o600 });
  else await writeFile(join(credentialsDir, 'password'), `${sshd.password}\n`, { mode: 0o600 });
  const hostKeyFile = join(dir, 'ssh_host_ed25519_key');
  await run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'chaperone-sidecar', '-f', hostKeyFile]);
  const sidecarPub = (await readFile(`${hostKeyFile}.pub`, 'utf8')).trim().split(' ');
  const upstreamLines = (await readFile(sshd.knownHostsPath, 'utf8'))
    .trim()
    .split('\n')
    .map((l) => l.split(' ').slice(1, 3).join(' '));
  const key = generateSigningKey();
  const signingKeyFile = join(dir, 'signing-key.pem');
  await writeFile(signingKeyFile, key.privateKeyPem, { mode: 0o600 });
  const storeUrl = `file://${join(dir, 'store')}`;
  await mkdir(join(dir, 'store'), { recursive: true });
  const listenPort = await freePort();
  const issuer = await startLocalIssuer(undefined, { closeWithTest: false });
  const token = await issuer.sign({ sub: AGENT_SUBJECT, aud: TOKEN_AUDIENCE }, { expiresIn: '2h' });
  const input = {
    apiVersion: 'chaperone.dev/sidecar-v1',
    policy: { name: 'test-policy', namespace: 'agents', generation: 1 },
    adminPort: await freePort(),
    shutdownGraceSeconds: 5,
    targets: [
      {
        name: 'build-host',
        protocol: 'ssh',
        upstream: { host: sshd.host, port: sshd.port },
        listenPort,
        credentialsDir,
        ssh: {
          upstreamHostKeys: options.upstreamHostKeys ?? upstreamLines,
          allowEnv: options.allowEnv ?? [],
          allowDirectTcpip: options.allowDirectTcpip ?? [],
          ...(options.maskOutput ? { maskOutput: true } : {}),
          hostKeyFile,
        },
      },
    ],
    identity: {
      tokenRequired: true,
      issuers: [{ issuer: issuer.issuer, audiences: [TOKEN_AUDIENCE] }],
      ...options.identity,
    },
    recording: {
      store: { url: storeUrl },
      signingKeyFile,
      keyId: key.keyId,
      spoolDir: join(dir, 'spool'),
      segment: { maxSeconds: 1 },
    },
    ...options.config,
    approvals: { backend: 'local', localDir: approvalsDir, timeoutSeconds: 30, ...options.config?.approvals },
  } as SidecarConfigInput;
  const config = sidecarConfigSchema.parse(input);
  const logger = pino({ level: process.env.CHAPERONE_TEST_LOG ? 'debug' : 'warn' });
  const sidecar = await Sidecar.start({
    config,
    logger,
    pod: { serviceAccount: 'agent', pod: 'agent-0', namespace: 'agents', node: 'node-1', podUid: 'uid-1' },
    version: '0.1.0-test',
    limits: DEFAULT_LIMITS,
    noAdmin: true,
  });
  const knownHostsPath = join(dir, 'agent_known_hosts');
  await writeFile(knownHostsPath, `[127.0.0.1]:${listenPort} ${sidecarPub[0]} ${sidecarPub[1]}\n`);
  const askpass = join(dir, 'askpass.sh');
  await writeFile(askpass, '#!/bin/sh\nprintf "%s\\n" "$CHAPERONE_TOKEN"\n', { mode: 0o700 });
  const store = openStore(storeUrl);
  const events = async (id: string) => {
    const out: RecordedEventLike[] = [];
    for await (const e of readSession(store, id)) out.push(e as unknown as RecordedEventLike);
    return out;
  };
  const sessionIds = async () => {
    const ids: string[] = [];
    for await (const s of listSessions(store)) ids.push(s.sessionId);
    return ids;
  };
  const clientOptions = (t = token) => ({
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
  let closed = false;
  return {
    sidecar,
    port: listenPort,
    dir,
    sshd,
    token,
    issuer,
    approvalsDir,
    storeUrl,
    knownHostsPath,
    clientOptions,
    ssh: (args, opts) => runWith('ssh', ['-p', String(listenPort), ...args], opts),
    run: runWith,
    sessionIds,
    events,
    async waitForSession(match, timeoutMs = 20_000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        for (const id of await sessionIds()) {
          const evs = await events(id).catch(() => []);
          if (match(evs)) return evs;
        }
        if (Date.now() > deadline) throw new Error('no recorded session matched in time');
        await new Promise((r) => setTimeout(r, 200));
      }
    },
    async close() {
      if (closed) return;
      closed = true;
      await sidecar.shutdown('test finished');
      await issuer.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

export const kinds = (events: RecordedEventLike[], kind: string) => events.filter((e) => e.kind === kind);

/** The bytes of a channel's stream, decoded from its terminal events. */
export function streamText(events: RecordedEventLike[], kind: string, stream: string): string {
  return Buffer.concat(
    events
      .filter((e) => e.kind === kind && e.payload.stream === stream)
      .map((e) => Buffer.from(String(e.payload.data), 'base64')),
  ).toString('utf8');
}
