import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import type { RecordedEvent } from '../../recording/index.ts';
import { sampleHeader } from '../../recording/testing/fixtures.ts';
import { fileTestStore } from '../../recording/testing/test-store.ts';
import { run } from '../program.ts';
import { harChunks } from './har.ts';
import { harSchema } from './testing/har-schema.ts';

const sha = 'a'.repeat(64);
// biome-ignore lint/suspicious/noExplicitAny: the tests read into a parsed JSON document
type Json = any;

const b64 = (s: string) => Buffer.from(s).toString('base64');

function ev(
  seq: number,
  ms: number,
  kind: string,
  direction: RecordedEvent['direction'],
  payload: Record<string, unknown>,
): RecordedEvent {
  return {
    seq,
    wallMs: 1_700_000_000_000 + ms,
    monoNs: String(BigInt(ms) * 1_000_000n),
    direction,
    kind,
    payload,
  };
}

async function* from(events: RecordedEvent[]) {
  yield* events;
}

async function har(events: RecordedEvent[]): Promise<unknown> {
  let text = '';
  for await (const c of harChunks(from(events))) text += c;
  return JSON.parse(text);
}

test('HAR 1.2: exchanges, bodies, cookies, query strings and WebSocket messages, valid against the spec', async () => {
  const doc = (await har([
    ev(0, 0, 'session.start', 'internal', {
      sessionId: 's1',
      protocol: 'http',
      target: { name: 'api', host: 'api.example', port: 443 },
      identity: { subject: 'agent-alice' },
      labels: { 'http.upstream': 'https://api.example:443' },
    }),
    ev(1, 10, 'http.request', 'client', {
      exchange: '1',
      method: 'POST',
      url: '/v1/items?limit=5&q=a%20b',
      httpVersion: 'HTTP/1.1',
      headers: { 'content-type': 'application/json', cookie: '[redacted]' },
      body: { bytes: 11, sha256: sha, mimeType: 'application/json', text: '{"name":1}', truncated: false },
    }),
    ev(2, 12, 'http.request', 'client', { exchange: '2', method: 'GET', url: '/ws', headers: {} }),
    ev(3, 13, 'http.response', 'server', { exchange: '2', status: 101, headers: { upgrade: 'websocket' } }),
    ev(4, 14, 'http.websocket', 'client', { exchange: '2', opcode: 'text', data: b64('hi'), bytes: 2 }),
    ev(5, 40, 'http.response', 'server', {
      exchange: '1',
      status: 201,
      headers: { 'content-type': 'application/json', 'set-cookie': ['a=1; Path=/', 'b=2'] },
      body: { bytes: 100_000, sha256: sha, mimeType: 'application/json', text: '{"id":', truncated: true },
      timings: { waitMs: 20, receiveMs: 10 },
    }),
    ev(6, 41, 'http.websocket', 'server', {
      exchange: '2',
      opcode: 'binary',
      data: b64('\u0001\u0002'),
      bytes: 2,
    }),
  ])) as { log: { entries: Record<string, Json>[] } };
  harSchema.parse(doc);
  // The schema is no rubber stamp: an entry without its required cache object is refused.
  const broken = structuredClone(doc);
  delete broken.log.entries[0]!.cache;
  assert.throws(() => harSchema.parse(broken), /cache/);
  const [post, ws] = doc.log.entries;
  assert.equal(post!.request.url, 'https://api.example/v1/items?limit=5&q=a%20b');
  assert.deepEqual(post!.request.queryString, [
    { name: 'limit', value: '5' },
    { name: 'q', value: 'a b' },
  ]);
  assert.equal(post!.request.postData.text, '{"name":1}');
  assert.deepEqual(post!.response.cookies, [
    { name: 'a', value: '1' },
    { name: 'b', value: '2' },
  ]);
  assert.deepEqual(post!.response.content._chaperone, { bytes: 100_000, sha256: sha, truncated: true });
  assert.equal(post!.time, 30);
  assert.equal(ws!.response.status, 101);
  assert.deepEqual(
    ws!._webSocketMessages.map((m: { type: string; opcode: number; data: string }) => [
      m.type,
      m.opcode,
      m.data,
    ]),
    [
      ['send', 1, 'hi'],
      ['receive', 2, b64('\u0001\u0002')],
    ],
  );
});

test('chaperone sessions export --format har: a recorded HTTP session to a file; other protocols refused', async () => {
  const fixture = await fileTestStore('export-har');
  const { dir, url: store } = fixture;
  const rec = await fixture.recorder();
  const s = await rec.startSession(sampleHeader({ protocol: 'kubernetes' }));
  await s.append({
    kind: 'http.request',
    direction: 'client',
    payload: {
      exchange: '1',
      method: 'GET',
      url: '/api/v1/namespaces/a/pods',
      headers: {},
      kubernetes: { verb: 'list', apiGroup: '', apiVersion: 'v1', resource: 'pods', namespace: 'a' },
    },
  });
  await s.append({
    kind: 'http.response',
    direction: 'server',
    payload: { exchange: '1', status: 200, headers: {} },
  });
  await s.end({ reason: 'done' });
  const pg = await rec.startSession(sampleHeader({ protocol: 'postgres' }));
  await pg.end({ reason: 'done' });
  await rec.close();
  const out = join(dir, 'session.har');
  const io = { out: () => {}, err: () => {} };
  assert.equal(
    await run(['--store', store, 'sessions', 'export', s.sessionId, '--format', 'har', '-o', out], io),
    0,
  );
  const doc = harSchema.parse(JSON.parse(await readFile(out, 'utf8'))) as {
    log: { entries: Record<string, Json>[] };
  };
  assert.equal(doc.log.entries[0]!._chaperone.kubernetes.verb, 'list');
  let err = '';
  const code = await run(
    ['--store', store, 'sessions', 'export', pg.sessionId, '--format', 'har', '-o', join(dir, 'x.har')],
    {
      out: () => {},
      err: (t) => {
        err += t;
      },
    },
  );
  assert.equal(code, 1);
  assert.match(err, /is postgres, not an HTTP session/);
});
