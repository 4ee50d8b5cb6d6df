// Test support for the HTTP gateway: a sidecar in this process with one http target in front of a
// real HTTPS server (upstream-server.ts), a token issuer the sidecar trusts, local approvals and a
// file:// recording store read back with the recording reader.
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import type { RecordedEvent } from '../../../recording/index.ts';
import { freePort } from '../../../test/env/net.ts';
import { type SidecarConfigInput, sidecarConfigSchema } from '../../config/index.ts';
import { type LocalIssuer, startLocalIssuer } from '../../identity/testing/local-issuer.ts';
import { DEFAULT_LIMITS } from '../../postgres/context.ts';
import { generateSigningKey, listSessions, openStore, readSession } from '../../server/modules.ts';
import { Sidecar } from '../../server/sidecar.ts';

export const AGENT_SUBJECT = 'agent-alice';
export const UPSTREAM_TOKEN = 'upstream-secret-token';

export interface HttpHarness {
  sidecar: Sidecar;
  port: number;
  base: string;
  dir: string;
  storeUrl: string;
  approvalsDir: string;
  issuer: LocalIssuer;
  token: string;
  events(sessionId: string): Promise<RecordedEvent[]>;
  sessionIds(): Promise<string[]>;
  /** Polls until a recorded session satisfies `match`. */
  waitForSession(match: (events: RecordedEvent[]) => boolean, timeoutMs?: number): Promise<RecordedEvent[]>;
  close(): Promise<void>;
}

export interface HttpHarnessOptions {
  target: Omit<SidecarConfigInput['targets'][number], 'name' | 'listenPort' | 'credentialsDir'> & {
    name?: string;
  };
  /** Files of the credentials Secret. */
  credentials?: Record<string, string>;
  config?: Partial<SidecarConfigInput>;
  /** Issuers instead of the local one (the Kubernetes tests use the apiserver's). */
  issuers?: SidecarConfigInput['identity'] extends infer I
    ? I extends { issuers?: infer X }
      ? X
      : never
    : never;
  pod?: { serviceAccount?: string; namespace?: string; pod?: string };
  /** recording.durability (default: strict, as failClosed implies). */
  durability?: 'strict' | 'batched';
  /** recording.segment.maxSeconds (default 1: tests read sessions back soon). */
  segmentSeconds?: number;
}

export async function startHttpHarness(options: HttpHarnessOptions): Promise<HttpHarness> {
  const dir = await mkdtemp(join(tmpdir(), 'chaperone-http-'));
  const credentialsDir = join(dir, 'credentials');
  const approvalsDir = join(dir, 'approvals');
  await mkdir(credentialsDir, { recursive: true });
  await mkdir(approvalsDir, { recursive: true });
  for (const [name, value] of Object.entries(options.credentials ?? { token: UPSTREAM_TOKEN }))
    await writeFile(join(credentialsDir, name), `${value}\n`, { mode: 0o600 });
  const key = generateSigningKey();
  const signingKeyFile = join(dir, 'signing-key.pem');
  await writeFile(signingKeyFile, key.privateKeyPem, { mode: 0o600 });
  const storeUrl = `file://${join(dir, 'store')}`;
  await mkdir(join(dir, 'store'), { recursive: true });
  const listenPort = await freePort();
  const issuer = await startLocalIssuer(undefined, { closeWithTest: false });
  const token = await issuer.sign({ sub: AGENT_SUBJECT, aud: 'chaperone' }, { expiresIn: '2h' });
  const input = {
    apiVersion: 'chaperone.dev/sidecar-v1',
    policy: { name: 'http-policy', namespace: 'agents', generation: 1 },
    adminPort: await freePort(),
    shutdownGraceSeconds: 2,
    targets: [{ name: 'api', ...options.target, listenPort, credentialsDir }],
    identity: {
      tokenRequired: true,
      issuers: options.issuers ?? [{ issuer: issuer.issuer, audiences: ['chaperone'] }],
    },
    recording: {
      store: { url: storeUrl },
      signingKeyFile,
      keyId: key.keyId,
      spoolDir: join(dir, 'spool'),
      segment: { maxSeconds: options.segmentSeconds ?? 1 },
      ...(options.durability ? { durability: options.durability } : {}),
    },
    ...options.config,
    approvals: { backend: 'local', localDir: approvalsDir, timeoutSeconds: 30, ...options.config?.approvals },
  } as SidecarConfigInput;
  const config = sidecarConfigSchema.parse(input);
  const sidecar = await Sidecar.start({
    config,
    logger: pino({ level: process.env.CHAPERONE_TEST_LOG ? 'debug' : 'silent' }),
    pod: {
      serviceAccount: options.pod?.serviceAccount ?? 'agent',
      pod: options.pod?.pod ?? 'agent-0',
      namespace: options.pod?.namespace ?? 'agents',
      node: 'node-1',
      podUid: 'uid-1',
    },
    version: '0.1.0-test',
    limits: DEFAULT_LIMITS,
    noAdmin: true,
  });
  const store = openStore(storeUrl);
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
    sidecar,
    port: listenPort,
    base: `http://127.0.0.1:${listenPort}`,
    dir,
    storeUrl,
    approvalsDir,
    issuer,
    token,
    events,
    sessionIds,
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
      await issuer.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}
