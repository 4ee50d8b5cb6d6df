// Test support every gateway's harness builds on: a sidecar in this process with one target, its
// files in a temporary directory (upstream credentials only the sidecar reads, a signing key, local
// approvals), a token issuer the sidecar trusts (the agent's token is a real signed JWT), a
// recording store (file:// or MinIO) read back with the recording reader, and a runner for real
// client programs. Each protocol's harness (sidecar/<protocol>/testing/harness.ts) adds its target
// and its clients.
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Logger, pino } from 'pino';
import type { RecordedEvent } from '../../recording/index.ts';
import { s3OptionsFor, s3UrlFor } from '../../recording/testing/fixtures.ts';
import { freePort } from '../../test/env/net.ts';
import type { MinioInfo } from '../../test/env/types.ts';
import { type SidecarConfig, type SidecarConfigInput, sidecarConfigSchema } from '../config/index.ts';
import { type LocalIssuer, startLocalIssuer } from '../identity/testing/local-issuer.ts';
import { DEFAULT_LIMITS } from '../postgres/context.ts';
import { generateSigningKey, listSessions, openStore, readSession } from '../server/modules.ts';
import { Sidecar, type SidecarOptions } from '../server/sidecar.ts';

/** The subject of the harness's token. */
export const AGENT_SUBJECT = 'agent-alice';
/** The audience the harness's issuer is trusted for. */
export const TOKEN_AUDIENCE = 'chaperone';

export { type RunResult, runProcess } from '../../test/testing/run-process.ts';

export const kinds = <E extends { kind: string }>(events: E[], kind: string) =>
  events.filter((e) => e.kind === kind);

/** The harness's directory, its target's port and credentials, and the token issuer. */
export interface Workspace {
  dir: string;
  /** Files of the target's credentials Secret. */
  credentialsDir: string;
  approvalsDir: string;
  listenPort: number;
  /** The token issuer the sidecar trusts (audience TOKEN_AUDIENCE) unless the test's config says otherwise. */
  issuer: LocalIssuer;
  /** A valid token of that issuer for AGENT_SUBJECT, good for two hours. */
  token: string;
}

/**
 * A fresh temporary directory (`chaperone-<prefix>-*`) with the credentials files (a string is
 * written as a line, a Buffer as it is), a free listen port and a started issuer.
 */
export async function openWorkspace(
  prefix: string,
  credentials: Record<string, string | Buffer>,
): Promise<Workspace> {
  const dir = await mkdtemp(join(tmpdir(), `chaperone-${prefix}-`));
  const credentialsDir = join(dir, 'credentials');
  const approvalsDir = join(dir, 'approvals');
  await mkdir(credentialsDir, { recursive: true });
  await mkdir(approvalsDir, { recursive: true });
  for (const [name, value] of Object.entries(credentials))
    await writeFile(join(credentialsDir, name), typeof value === 'string' ? `${value}\n` : value, {
      mode: 0o600,
    });
  const listenPort = await freePort();
  const issuer = await startLocalIssuer(undefined, { closeWithTest: false });
  const token = await issuer.sign({ sub: AGENT_SUBJECT, aud: TOKEN_AUDIENCE }, { expiresIn: '2h' });
  return { dir, credentialsDir, approvalsDir, listenPort, issuer, token };
}

type TargetInput = SidecarConfigInput['targets'][number];
type IdentityInput = NonNullable<SidecarConfigInput['identity']>;
type RecordingInput = SidecarConfigInput['recording'];

export interface SidecarHarnessOptions {
  /** The one target (its listenPort and credentialsDir are the workspace's). */
  target: Omit<TargetInput, 'listenPort' | 'credentialsDir'>;
  policy: { name: string; generation: number };
  shutdownGraceSeconds: number;
  /** Issuers instead of the workspace's one (the Kubernetes tests use the apiserver's). */
  issuers?: IdentityInput['issuers'];
  /** More identity settings (liveness, offboarding) next to the issuers. */
  identity?: Partial<IdentityInput>;
  /** More recording settings (durability, segment) over the harness's. */
  recording?: Partial<RecordingInput>;
  /** Record to this MinIO (the S3 path a pod uses) instead of a local file:// store. */
  minio?: MinioInfo;
  /** Config over the harness's (approvals merge into the harness's local approvals). */
  config?: Partial<SidecarConfigInput>;
  logger: Logger;
  /** Serve the admin endpoints on 127.0.0.1 (off by default). */
  admin?: boolean;
  pod?: Partial<SidecarOptions['pod']>;
  /** Sidecar options over the harness's. */
  sidecar?: Partial<SidecarOptions>;
  /** Cleanup of the protocol's own, after the sidecar and the issuer stopped, before the directory goes. */
  cleanup?: () => Promise<unknown>;
}

export interface SidecarHarness extends Workspace {
  sidecar: Sidecar;
  /** The listen port of the target. */
  port: number;
  config: SidecarConfig;
  storeUrl: string;
  /** Ids of every recorded session (the store as the reader sees it). */
  sessionIds(): Promise<string[]>;
  events(sessionId: string): Promise<RecordedEvent[]>;
  /** Polls until a session whose events satisfy `match` is in the store. */
  waitForSession(match: (events: RecordedEvent[]) => boolean, timeoutMs?: number): Promise<RecordedEvent[]>;
  close(): Promise<void>;
}

/** A logger that keeps every line (debug and up) in `logs`. */
export function capturingLogger(): { logger: Logger; logs: Record<string, unknown>[] } {
  const logs: Record<string, unknown>[] = [];
  const logger = pino(
    { level: 'debug' },
    {
      write(line: string) {
        logs.push(JSON.parse(line) as Record<string, unknown>);
      },
    },
  );
  return { logger, logs };
}

/** The sidecar's log on stdout: debug with CHAPERONE_TEST_LOG set, else `quiet`. */
export function testLogger(quiet: 'warn' | 'silent'): Logger {
  return pino({ level: process.env.CHAPERONE_TEST_LOG ? 'debug' : quiet });
}

/** Starts the sidecar on the workspace: config written and parsed, signing key, store. */
export async function startSidecarHarness(
  ws: Workspace,
  options: SidecarHarnessOptions,
): Promise<SidecarHarness> {
  const { dir, approvalsDir, listenPort, minio } = { ...ws, minio: options.minio };
  const key = generateSigningKey();
  const signingKeyFile = join(dir, 'signing-key.pem');
  await writeFile(signingKeyFile, key.privateKeyPem, { mode: 0o600 });
  const storeUrl = minio ? s3UrlFor(minio, 'gateway') : `file://${join(dir, 'store')}`;
  await mkdir(join(dir, 'store'), { recursive: true });
  const storeCredentialsDir = join(dir, 'store-credentials');
  if (minio) {
    await mkdir(storeCredentialsDir, { recursive: true });
    await writeFile(join(storeCredentialsDir, 'accessKeyId'), minio.accessKeyId, { mode: 0o600 });
    await writeFile(join(storeCredentialsDir, 'secretAccessKey'), minio.secretAccessKey, { mode: 0o600 });
  }
  const input = {
    apiVersion: 'chaperone.dev/sidecar-v1',
    policy: { ...options.policy, namespace: 'agents' },
    adminPort: await freePort(),
    shutdownGraceSeconds: options.shutdownGraceSeconds,
    targets: [{ ...options.target, listenPort, credentialsDir: ws.credentialsDir }],
    identity: {
      tokenRequired: true,
      issuers: options.issuers ?? [{ issuer: ws.issuer.issuer, audiences: [TOKEN_AUDIENCE] }],
      ...options.identity,
    },
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
      ...options.recording,
    },
    ...options.config,
    approvals: { backend: 'local', localDir: approvalsDir, timeoutSeconds: 30, ...options.config?.approvals },
  } as SidecarConfigInput;
  const config = sidecarConfigSchema.parse(input);
  const sidecar = await Sidecar.start({
    config,
    logger: options.logger,
    pod: {
      serviceAccount: 'agent',
      pod: 'agent-0',
      namespace: 'agents',
      node: 'node-1',
      podUid: 'uid-1',
      ...options.pod,
    },
    version: '0.1.0-test',
    limits: DEFAULT_LIMITS,
    ...(options.admin ? { adminHost: '127.0.0.1' } : { noAdmin: true }),
    ...options.sidecar,
  });
  const store = minio ? openStore(storeUrl, s3OptionsFor(minio)) : openStore(storeUrl);
  const events = async (id: string) => {
    const out: RecordedEvent[] = [];
    for await (const e of readSession(store, id)) out.push(e);
    return out;
  };
  const sessionIds = async () => {
    const ids: string[] = [];
    for await (const s of listSessions(store)) ids.push(s.sessionId);
    return ids;
  };
  let closed = false;
  return {
    ...ws,
    sidecar,
    port: listenPort,
    config,
    storeUrl,
    sessionIds,
    events,
    async waitForSession(match, timeoutMs = 20_000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        for (const id of await sessionIds()) {
          const evs = await events(id).catch(() => [] as RecordedEvent[]);
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
      await ws.issuer.close();
      await options.cleanup?.();
      await rm(dir, { recursive: true, force: true });
    },
  };
}
