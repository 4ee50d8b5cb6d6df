// Test support for the postgres gateway: a sidecar in this process in front of the real test
// PostgreSQL, an upstream role only the sidecar knows the password of, a token issuer the sidecar
// trusts (the agent's password is a real signed JWT), a file:// recording store read back with the
// recording reader, and real psql runs.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { s3OptionsFor, s3UrlFor } from '../../../recording/testing/fixtures.ts';
import { createRole, psql } from '../../../test/env/postgres.ts';
import type { MinioInfo, PostgresInfo } from '../../../test/env/types.ts';
import { type SidecarConfig, type SidecarConfigInput, sidecarConfigSchema } from '../../config/index.ts';
import { type LocalIssuer, startLocalIssuer } from '../../identity/testing/local-issuer.ts';
import { generateSigningKey, listSessions, openStore, readSession } from '../../server/modules.ts';
import { Sidecar, type SidecarOptions } from '../../server/sidecar.ts';
import { DEFAULT_LIMITS, type PostgresLimits } from '../context.ts';

export interface RecordedEventLike {
  kind: string;
  payload: Record<string, unknown>;
}

export interface Harness {
  sidecar: Sidecar;
  port: number;
  pg: PostgresInfo;
  dir: string;
  storeUrl: string;
  approvalsDir: string;
  upstreamUser: string;
  upstreamPassword: string;
  config: SidecarConfig;
  logs: Record<string, unknown>[];
  /** The token issuer the sidecar trusts (audience TOKEN_AUDIENCE) unless the test's config says otherwise. */
  issuer: LocalIssuer;
  /** A valid token of that issuer for AGENT_SUBJECT, good for two hours. */
  token: string;
  /** psql against the sidecar, the token as the password. */
  psql(args: string[], opts: { token?: string; stdin?: string; timeoutMs?: number }): Promise<PsqlResult>;
  /** Connection settings for node-postgres through the sidecar. */
  clientConfig(token?: string): {
    host: string;
    port: number;
    user: string;
    password?: string;
    database: string;
  };
  /** Ids of every recorded session (the store as the reader sees it). */
  sessionIds(): Promise<string[]>;
  events(sessionId: string): Promise<RecordedEventLike[]>;
  /** Polls until a session whose events satisfy `match` is in the store. */
  waitForSession(
    match: (events: RecordedEventLike[]) => boolean,
    timeoutMs?: number,
  ): Promise<RecordedEventLike[]>;
  close(): Promise<void>;
}

export interface PsqlResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** The subject of the harness's token. */
export const AGENT_SUBJECT = 'agent-alice';
/** The audience the harness's issuer is trusted for. */
export const TOKEN_AUDIENCE = 'chaperone';

export function runProcess(
  command: string,
  args: string[],
  opts: { env?: NodeJS.ProcessEnv; stdin?: string; timeoutMs?: number },
): Promise<PsqlResult> {
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

export interface HarnessOptions {
  config?: Partial<SidecarConfigInput>;
  limits?: Partial<PostgresLimits>;
  sidecar?: Partial<SidecarOptions>;
  /** The target's upstream instead of the test PostgreSQL (an impostor, say), and its TLS settings. */
  upstream?: { host: string; port: number };
  tls?: SidecarConfigInput['targets'][number]['tls'];
  /** How the upstream role logs in (pg_hba.conf of the test cluster): SCRAM by default. */
  upstreamMethod?: 'scram' | 'md5';
  /** Record to this MinIO (the S3 path a pod uses) instead of a local file:// store. */
  minio?: MinioInfo;
}

export async function startHarness(pg: PostgresInfo, options: HarnessOptions = {}): Promise<Harness> {
  const dir = await mkdtemp(join(tmpdir(), 'chaperone-pg-'));
  const upstreamUser = `chaperone_up_${randomBytes(4).toString('hex')}`;
  const upstreamPassword = randomBytes(18).toString('base64url');
  await createRole(pg, {
    name: upstreamUser,
    password: upstreamPassword,
    superuser: true,
    ...(options.upstreamMethod ? { method: options.upstreamMethod } : {}),
  });
  const credentialsDir = join(dir, 'credentials');
  const approvalsDir = join(dir, 'approvals');
  await mkdir(credentialsDir, { recursive: true });
  await mkdir(approvalsDir, { recursive: true });
  await writeFile(join(credentialsDir, 'username'), `${upstreamUser}\n`, { mode: 0o600 });
  await writeFile(join(credentialsDir, 'password'), `${upstreamPassword}\n`, { mode: 0o600 });
  const key = generateSigningKey();
  const signingKeyFile = join(dir, 'signing-key.pem');
  await writeFile(signingKeyFile, key.privateKeyPem, { mode: 0o600 });
  const minio = options.minio;
  const storeUrl = minio ? s3UrlFor(minio, 'gateway') : `file://${join(dir, 'store')}`;
  await mkdir(join(dir, 'store'), { recursive: true });
  const storeCredentialsDir = join(dir, 'store-credentials');
  if (minio) {
    await mkdir(storeCredentialsDir, { recursive: true });
    await writeFile(join(storeCredentialsDir, 'accessKeyId'), minio.accessKeyId, { mode: 0o600 });
    await writeFile(join(storeCredentialsDir, 'secretAccessKey'), minio.secretAccessKey, { mode: 0o600 });
  }
  const { freePort } = await import('../../../test/env/net.ts');
  const listenPort = await freePort();
  const issuer = await startLocalIssuer(undefined, { closeWithTest: false });
  const token = await issuer.sign({ sub: AGENT_SUBJECT, aud: TOKEN_AUDIENCE }, { expiresIn: '2h' });
  const input: SidecarConfigInput = {
    apiVersion: 'chaperone.dev/sidecar-v1',
    policy: { name: 'test-policy', namespace: 'agents', generation: 3 },
    adminPort: await freePort(),
    shutdownGraceSeconds: 5,
    targets: [
      {
        name: 'orders-db',
        protocol: 'postgres',
        upstream: options.upstream ?? { host: pg.host, port: pg.port },
        listenPort,
        credentialsDir,
        ...(options.tls ? { tls: options.tls } : {}),
      },
    ],
    identity: { tokenRequired: true, issuers: [{ issuer: issuer.issuer, audiences: [TOKEN_AUDIENCE] }] },
    approvals: { backend: 'local', localDir: approvalsDir, timeoutSeconds: 30 },
    recording: {
      store: minio
        ? {
            url: storeUrl,
            endpoint: minio.endpoint,
            region: minio.region,
            credentialsDir: storeCredentialsDir,
          }
        : { url: storeUrl },
      signingKeyFile,
      keyId: key.keyId,
      spoolDir: join(dir, 'spool'),
      segment: { maxSeconds: 1 },
    },
    ...options.config,
  } as SidecarConfigInput;
  input.approvals = {
    backend: 'local',
    localDir: approvalsDir,
    timeoutSeconds: 30,
    ...options.config?.approvals,
  };
  const config = sidecarConfigSchema.parse(input);
  const logs: Record<string, unknown>[] = [];
  const logger = pino(
    { level: 'debug' },
    {
      write(line: string) {
        logs.push(JSON.parse(line) as Record<string, unknown>);
      },
    },
  );
  const sidecar = await Sidecar.start({
    config,
    logger,
    pod: { serviceAccount: 'agent', pod: 'agent-0', namespace: 'agents', node: 'node-1', podUid: 'uid-1' },
    version: '0.1.0-test',
    limits: { ...DEFAULT_LIMITS, ...options.limits },
    adminHost: '127.0.0.1',
    ...options.sidecar,
  });
  const store = minio ? openStore(storeUrl, s3OptionsFor(minio)) : openStore(storeUrl);
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
  let closed = false;
  return {
    sidecar,
    port: listenPort,
    pg,
    dir,
    storeUrl,
    approvalsDir,
    upstreamUser,
    upstreamPassword,
    config,
    logs,
    issuer,
    token,
    psql(args, opts) {
      const env: NodeJS.ProcessEnv = { PATH: process.env.PATH, PGCONNECT_TIMEOUT: '10', LANG: 'C' };
      if (opts.token !== undefined) env.PGPASSWORD = opts.token;
      return runProcess(
        join(pg.binDir, 'psql'),
        ['-X', '-h', '127.0.0.1', '-p', String(listenPort), '-U', 'agent', '-d', pg.database, ...args],
        { env, stdin: opts.stdin, timeoutMs: opts.timeoutMs },
      );
    },
    clientConfig(password = token) {
      return { host: '127.0.0.1', port: listenPort, user: 'agent', password, database: pg.database };
    },
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
      await psql(pg, `DROP OWNED BY ${upstreamUser}; DROP ROLE ${upstreamUser}`).catch(() => undefined);
      await rm(dir, { recursive: true, force: true });
    },
  };
}

export const kinds = (events: RecordedEventLike[], kind: string) => events.filter((e) => e.kind === kind);
