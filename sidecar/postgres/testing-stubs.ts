// TEMPORARY: thin stand-ins for sidecar/identity, sidecar/policy and recording/ (built in parallel in
// other branches), shaped exactly like their contracts. Removed when those branches are merged.
import { randomUUID } from 'node:crypto';
import { appendFileSync, mkdirSync } from 'node:fs';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from 'pino';
import type { Guardrail, GuardrailAction, Masking, Protocol, SqlClass } from '../../crds/index.ts';
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

export interface SqlDecision {
  action: GuardrailAction;
  rule?: string;
  message?: string;
  classes: SqlClass[];
  statementTypes: string[];
  parseError?: string;
}
export interface SqlGuard {
  evaluate(sql: string): SqlDecision;
}
function classesOf(sql: string): SqlClass[] {
  const s = sql.trim().toLowerCase();
  const out: SqlClass[] = [];
  if (/^drop\b/.test(s)) out.push('drop', 'ddl');
  if (/^delete\b/.test(s) && !/\bwhere\b/.test(s)) out.push('deleteWithoutWhere');
  if (/^(insert|update|delete)\b/.test(s)) out.push('write');
  if (/^select\b/.test(s)) out.push('read');
  return out;
}
export async function createSqlGuard(rules: Guardrail[], target: string): Promise<SqlGuard> {
  const applicable = rules.filter((r) => !r.targets || r.targets.includes(target));
  return {
    evaluate(sql) {
      const classes = classesOf(sql);
      for (const r of applicable) {
        const m = r.match;
        if (m.sqlClasses && !m.sqlClasses.some((c) => classes.includes(c))) continue;
        if (m.sqlPattern && !new RegExp(m.sqlPattern).test(sql)) continue;
        if (!m.sqlClasses && !m.sqlPattern) continue;
        return { action: r.action, rule: r.name, message: r.message, classes, statementTypes: [] };
      }
      return { action: 'allow', classes, statementTypes: [] };
    },
  };
}
export interface ColumnInfo {
  name: string;
  dataTypeID: number;
  format: 'text' | 'binary';
}
export interface RowMasker {
  maskRow(values: (Buffer | null)[]): { values: (Buffer | null)[]; maskedCells: number };
  readonly active: boolean;
}
export interface Masker {
  forColumns(columns: ColumnInfo[]): RowMasker;
}
export function createMasker(masking: Masking): Masker {
  const cols = masking.columns.map((c) => new RegExp(c.pattern));
  const card = masking.detectors.some((d) => d.type === 'creditCard');
  return {
    forColumns(columns) {
      const byName = columns.map((c) => cols.some((re) => re.test(c.name)));
      return {
        active: card || byName.some(Boolean),
        maskRow(values) {
          let maskedCells = 0;
          const out = values.map((v, i) => {
            if (v === null) return v;
            if (byName[i] || (card && /\b\d{4}[ -]?\d{4}[ -]?\d{4}[ -]?\d{4}\b/.test(v.toString()))) {
              maskedCells++;
              return Buffer.from('****');
            }
            return v;
          });
          return { values: out, maskedCells };
        },
      };
    },
  };
}
export interface ApprovalRequest {
  sessionId: string;
  policy: string;
  rule: string;
  target: string;
  protocol: Protocol;
  subject: string;
  pod?: string;
  statement: string;
  timeoutMs: number;
}
export interface ApprovalDecision {
  approved: boolean;
  approver?: string;
  reason?: string;
  timedOut?: boolean;
}
export interface ApprovalBackend {
  request(req: ApprovalRequest, signal?: AbortSignal): Promise<ApprovalDecision>;
}
export function createLocalApprovalBackend(dir: string): ApprovalBackend {
  return {
    async request(req, signal) {
      const id = randomUUID();
      await writeFile(join(dir, `${id}.request.json`), JSON.stringify(req));
      const deadline = Date.now() + req.timeoutMs;
      while (Date.now() < deadline && !signal?.aborted) {
        try {
          return JSON.parse(await readFile(join(dir, `${id}.decision.json`), 'utf8')) as ApprovalDecision;
        } catch {
          await new Promise((r) => setTimeout(r, 100));
        }
      }
      return { approved: false, timedOut: true, reason: 'timed out' };
    },
  };
}
export function createDenyingApprovalBackend(): ApprovalBackend {
  return { request: async () => ({ approved: false, reason: 'no approval backend configured' }) };
}
export interface Alert {
  kind: 'blocked' | 'approval' | 'deniedSubject' | 'alert' | 'invalidToken';
  sessionId?: string;
  subject?: string;
  target: string;
  rule?: string;
  statement?: string;
  message: string;
}
export interface AlertSink {
  send(alert: Alert): void;
  close(): Promise<void>;
}
export function createAlertSink(_config: SidecarConfig['alerts'], logger: Logger): AlertSink {
  return { send: (alert) => logger.warn({ alert }, 'alert'), close: async () => {} };
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
