// Recordings for the viewer's tests, written through the real recorder: a SQL session with a
// masked result, a blocked and an approved statement and an XSS payload; a terminal session; an
// HTTP session; and helpers to tamper with a stored segment.
import { join } from 'node:path';
import { GetObjectCommand, ListObjectsV2Command, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import {
  type EventInput,
  generateSigningKey,
  openRecorder,
  type S3Options,
  type SessionHeaderInput,
  type SessionRecording,
} from '../../../recording/index.ts';
import { sampleHeader } from '../../../recording/testing/fixtures.ts';

export const XSS_SQL = `SELECT '<script>window.__xss = 1</script><img src=x onerror="window.__xss = 2">' AS note`;
export const BLOCKED_SQL = 'DROP TABLE orders';
export const APPROVED_SQL = 'DELETE FROM orders WHERE id = 42';
export const TERMINAL_TEXT = 'hello-from-the-terminal';
export const TERMINAL_SUBJECT = 'alice@example.com';

const b64 = (s: string) => Buffer.from(s).toString('base64');

/** A statement as the PostgreSQL gateway records it (simple query protocol). */
const query = (sql: string): EventInput => ({
  kind: 'pg.query',
  direction: 'client',
  payload: { sql, protocol: 'simple' },
  summary: sql,
});
/** A statement's result as recorded (cells already masked). */
const result = (payload: Record<string, unknown>): EventInput => ({
  kind: 'pg.result',
  direction: 'server',
  payload,
});

async function appendAll(session: SessionRecording, events: EventInput[]): Promise<void> {
  for (const e of events) await session.append(e);
}

export interface Recorded {
  sql: string;
  terminal: string;
  http: string;
  tampered: string;
}

export async function recordFixtures(
  dir: string,
  store: string,
  s3: S3Options | undefined,
  key = generateSigningKey(),
): Promise<Recorded> {
  const rec = await openRecorder({
    spoolDir: join(dir, 'spool'),
    store,
    ...(s3 ? { s3 } : {}),
    signingKey: key.privateKeyPem,
  });
  const start = async (h: Partial<SessionHeaderInput>) => rec.startSession(sampleHeader(h));

  const sql = await start({});
  await appendAll(sql, [
    query('SELECT id, email FROM customers LIMIT 2'),
    result({
      commandTag: 'SELECT 2',
      rows: 2,
      columns: ['id', 'email'],
      rowsSample: [
        ['1', '***'],
        ['2', '***'],
      ],
      maskedCells: 2,
    }),
    query(XSS_SQL),
    result({
      commandTag: 'SELECT 1',
      rows: 1,
      columns: ['note'],
      rowsSample: [['<b>bold?</b>']],
      maskedCells: 0,
    }),
    {
      kind: 'policy.blocked',
      direction: 'internal',
      payload: { rule: 'no-drop', reason: 'DROP is not allowed for agents', command: BLOCKED_SQL },
    },
    {
      kind: 'approval.requested',
      direction: 'internal',
      payload: { approval: 'a-1', reason: 'destructive statement', command: APPROVED_SQL },
    },
    {
      kind: 'approval.granted',
      direction: 'internal',
      payload: { approval: 'a-1', approver: 'carol@example.com', reason: 'ticket OPS-7' },
    },
    query(APPROVED_SQL),
    result({ commandTag: 'DELETE 1', rows: 1, maskedCells: 0 }),
  ]);
  await sql.end({ reason: 'client closed' });

  const term = await start({
    protocol: 'ssh',
    target: { name: 'build-host', host: '10.0.0.9', port: 22 },
    identity: {
      subject: TERMINAL_SUBJECT,
      namespace: 'ops',
      pod: 'shell-agent-1',
      serviceAccount: 'shell-agent',
    },
  });
  const t0 = { wallMs: Date.now(), mono: process.hrtime.bigint() };
  /** A terminal event `ms` after the session's start. */
  const at = (
    ms: number,
    kind: string,
    direction: EventInput['direction'],
    payload: Record<string, unknown>,
  ) => ({
    kind,
    direction,
    payload,
    at: { wallMs: t0.wallMs + ms, monoNs: t0.mono + BigInt(ms) * 1_000_000n },
  });
  await appendAll(term, [
    at(0, 'terminal.open', 'client', {
      channel: '0',
      mode: 'shell',
      pty: { term: 'xterm-256color', cols: 80, rows: 24 },
    }),
    at(100, 'terminal.output', 'server', { channel: '0', stream: 'stdout', data: b64('$ ') }),
    at(300, 'terminal.input', 'client', {
      channel: '0',
      stream: 'stdin',
      data: b64(`echo ${TERMINAL_TEXT}\r`),
    }),
    at(400, 'terminal.output', 'server', {
      channel: '0',
      stream: 'stdout',
      data: b64(`echo ${TERMINAL_TEXT}\r\n\x1b[32m${TERMINAL_TEXT}\x1b[0m\r\n$ `),
    }),
    at(600, 'terminal.exit', 'server', { channel: '0', code: 0 }),
  ]);
  await term.end({ reason: 'exit 0' });

  const http = await start({
    protocol: 'http',
    target: { name: 'kube-api', host: '10.96.0.1', port: 443 },
    identity: { subject: 'system:serviceaccount:agents:deployer', namespace: 'agents', pod: 'deployer-1' },
  });
  await http.append({
    kind: 'http.request',
    direction: 'client',
    payload: {
      exchange: 'x1',
      method: 'DELETE',
      url: '/api/v1/namespaces/prod/pods/web-0',
      headers: { authorization: '[redacted]' },
      kubernetes: {
        verb: 'delete',
        apiGroup: '',
        apiVersion: 'v1',
        resource: 'pods',
        namespace: 'prod',
        name: 'web-0',
      },
    },
  });
  const body = '{"kind":"Status","status":"Failure","reason":"Forbidden"}';
  await http.append({
    kind: 'http.response',
    direction: 'server',
    payload: {
      exchange: 'x1',
      status: 403,
      statusText: 'Forbidden',
      headers: { 'content-type': 'application/json' },
      body: { bytes: body.length, sha256: '0'.repeat(64), text: body, truncated: false },
    },
  });
  await http.end({ reason: 'done' });

  const tampered = await start({
    identity: { subject: 'mallory@example.com', namespace: 'agents', pod: 'report-bot-9' },
  });
  await tampered.append({
    kind: 'pg.query',
    direction: 'client',
    payload: { sql: 'SELECT secret FROM vault' },
    summary: 'SELECT secret FROM vault',
  });
  await tampered.end({ reason: 'done' });

  await rec.close({ deadlineMs: 60_000 });
  return { sql: sql.sessionId, terminal: term.sessionId, http: http.sessionId, tampered: tampered.sessionId };
}

/** Flips one byte in the middle of the first segment of a session stored in a MinIO bucket. */
export async function tamperFirstSegment(
  client: S3Client,
  bucket: string,
  prefix: string,
  sessionId: string,
): Promise<string> {
  const listed = await client.send(
    new ListObjectsV2Command({ Bucket: bucket, Prefix: `${prefix}/sessions/` }),
  );
  const key = (listed.Contents ?? [])
    .map((o) => o.Key!)
    .filter((k) => k.includes(`/session=${sessionId}/`) && k.endsWith('.zst'))
    .sort()[0];
  if (!key) throw new Error(`no segment of ${sessionId} under ${prefix}`);
  const out = await client.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
  const bytes = Buffer.from(await out.Body!.transformToByteArray());
  bytes[Math.floor(bytes.length / 2)]! ^= 0x01;
  await client.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: bytes }));
  return key;
}
