// TEMPORARY: thin stand-ins for sidecar/identity and recording/ (built in parallel in
// other branches), shaped exactly like their contracts. Removed when those branches are merged.
import { randomUUID } from 'node:crypto';
import { appendFileSync, mkdirSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from 'pino';
import type { Protocol } from '../../crds/index.ts';
import type { SidecarConfig } from '../config/index.ts';

export interface PodIdentity {
  serviceAccount?: string;
  pod?: string;
  namespace?: string;
  node?: string;
  podUid?: string;
}
export function podIdentityFromEnv(env: NodeJS.ProcessEnv = process.env): PodIdentity {
  return {
    serviceAccount: env.CHAPERONE_SERVICE_ACCOUNT,
    pod: env.CHAPERONE_POD_NAME,
    namespace: env.CHAPERONE_POD_NAMESPACE,
    node: env.CHAPERONE_NODE_NAME,
    podUid: env.CHAPERONE_POD_UID,
  };
}
export interface AgentIdentity extends PodIdentity {
  subject: string;
  issuer?: string;
  claims?: Record<string, unknown>;
  viaToken: boolean;
  source?: string;
}
export class IdentityError extends Error {
  code:
    | 'missing'
    | 'malformed'
    | 'signature'
    | 'algorithm'
    | 'expired'
    | 'notYetValid'
    | 'issuer'
    | 'audience'
    | 'denied'
    | 'unavailable';
  constructor(code: IdentityError['code'], message: string) {
    super(message);
    this.code = code;
  }
}
export interface IdentityVerifier {
  authenticate(token: string | undefined, ctx: { source?: string }): Promise<AgentIdentity>;
  close(): void;
}
/** Stub: accepts tokens "valid:<subject>". */
export function createIdentityVerifier(
  config: SidecarConfig['identity'],
  opts: { pod: PodIdentity; logger: Logger },
): IdentityVerifier {
  return {
    async authenticate(token, ctx) {
      if (!token) {
        if (config.tokenRequired) throw new IdentityError('missing', 'a token is required as the password');
        return {
          ...opts.pod,
          subject: `system:serviceaccount:${opts.pod.namespace}:${opts.pod.serviceAccount}`,
          viaToken: false,
          source: ctx.source,
        };
      }
      if (!token.startsWith('valid:')) throw new IdentityError('signature', 'token signature is invalid');
      const subject = token.slice(6);
      if (config.deniedSubjects.includes(subject))
        throw new IdentityError('denied', `subject ${subject} is denied`);
      return { ...opts.pod, subject, issuer: 'stub', viaToken: true, source: ctx.source };
    },
    close() {},
  };
}

// recording/ stand-in: one JSON-lines file per session under the file:// store directory.
export interface EventInput {
  kind: string;
  direction: 'client' | 'server' | 'internal';
  payload: Record<string, unknown>;
}
export interface SessionHeaderInput {
  sessionId?: string;
  protocol: Protocol;
  target: { name: string; host: string; port: number };
  identity: Record<string, unknown>;
  policy?: { name: string; namespace?: string; generation?: number };
  sidecarVersion: string;
  labels?: Record<string, string>;
}
export interface SessionRecording {
  readonly sessionId: string;
  append(event: EventInput): Promise<void>;
  end(summary: { reason: string; counts?: Record<string, number> }): Promise<void>;
}
export interface Recorder {
  startSession(header: SessionHeaderInput): Promise<SessionRecording>;
  close(opts?: { deadlineMs?: number }): Promise<void>;
  status(): { spooledBytes: number; pendingSegments: number; storeHealthy: boolean };
}
export interface RecordedEvent {
  seq: number;
  kind: string;
  direction: string;
  payload: Record<string, unknown>;
}
export async function openRecorder(options: {
  store: string | SegmentStore;
  spoolDir: string;
  [k: string]: unknown;
}): Promise<Recorder> {
  if (typeof options.store !== 'string') throw new Error('stub: store URL only');
  const dir = new URL(options.store).pathname;
  mkdirSync(dir, { recursive: true });
  return {
    async startSession(header) {
      const sessionId = header.sessionId ?? randomUUID();
      const file = join(dir, `${sessionId}.jsonl`);
      let seq = 0;
      const write = (kind: string, direction: string, payload: Record<string, unknown>) =>
        appendFileSync(file, `${JSON.stringify({ seq: seq++, kind, direction, payload })}\n`);
      write('session.start', 'internal', header as unknown as Record<string, unknown>);
      return {
        sessionId,
        append: async (e) => write(e.kind, e.direction, e.payload),
        end: async (s) => write('session.end', 'internal', s),
      };
    },
    close: async () => {},
    status: () => ({ spooledBytes: 0, pendingSegments: 0, storeHealthy: true }),
  };
}
export type SegmentStore = { dir: string };
export function openStore(url: string): SegmentStore {
  return { dir: new URL(url).pathname };
}
export async function* listSessions(store: SegmentStore): AsyncIterable<{ sessionId: string }> {
  for (const f of await readdir(store.dir)) if (f.endsWith('.jsonl')) yield { sessionId: f.slice(0, -6) };
}
export async function* readSession(store: SegmentStore, sessionId: string): AsyncIterable<RecordedEvent> {
  const text = await readFile(join(store.dir, `${sessionId}.jsonl`), 'utf8');
  for (const line of text.split('\n')) if (line) yield JSON.parse(line) as RecordedEvent;
}
export function generateSigningKey(): { privateKeyPem: string; publicKeyPem: string; keyId: string } {
  return { privateKeyPem: '', publicKeyPem: '', keyId: 'stub' };
}
