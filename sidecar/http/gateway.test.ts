// The HTTP target end to end: curl and Node clients through the sidecar to a real HTTPS server,
// with the agent's token verified and removed, the upstream credential added, guardrails,
// approvals, masking, streaming both ways and WebSocket, all read back from the recording.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { Client, request } from 'undici';
import { harSchema } from '../../cli/export/testing/har-schema.ts';
import { run } from '../../cli/program.ts';
import type { RecordedEvent, Recorder } from '../../recording/index.ts';
import { decideLocalApproval, listPendingLocalApprovals } from '../server/modules.ts';
import { runProcess } from '../testing/harness.ts';
import { REDACTED } from './headers.ts';
import { type HttpHarness, startHttpHarness, UPSTREAM_TOKEN } from './testing/harness.ts';
import { startUpstreamServer, type UpstreamServer } from './testing/upstream-server.ts';

let up: UpstreamServer;
let h: HttpHarness;

before(async () => {
  up = await startUpstreamServer();
  const dir = (await import('node:fs/promises')).mkdtemp;
  const caDir = await dir('/tmp/chaperone-http-ca-');
  await writeFile(join(caDir, 'ca.crt'), up.caPem);
  h = await startHttpHarness({
    target: {
      protocol: 'http',
      upstream: { host: '127.0.0.1', port: up.port },
      tls: { caFile: join(caDir, 'ca.crt') },
      http: { credential: 'bearer', bodyCapBytes: 1024 },
    },
    config: {
      guardrails: [
        {
          name: 'no-delete',
          match: { httpMethods: ['DELETE'] },
          action: 'block',
          message: 'deletes need a human',
        },
        { name: 'admin-approval', match: { pathPattern: '(?i)^/admin(/|$)' }, action: 'requireApproval' },
        {
          name: 'no-wipe',
          match: {
            httpMethods: ['POST'],
            pathPattern: '^/echo$',
            jsonBody: [{ field: 'job.action', pattern: '^wipe' }],
          },
          action: 'block',
          message: 'wipes need a human',
        },
      ],
      masking: {
        columns: [{ pattern: '^ssn$', strategy: 'redact' }],
        detectors: [{ type: 'email', strategy: 'redact' }],
      },
    },
  });
});
after(async () => {
  await h?.close();
  await up?.close();
});

const curl = (args: string[]) =>
  runProcess('curl', ['-sS', '--max-time', '60', ...args], { env: process.env });

function find(
  events: RecordedEvent[],
  kind: string,
  pred: (p: Record<string, unknown>) => boolean = () => true,
) {
  return events.filter((e) => e.kind === kind && pred(e.payload));
}

describe('http target', () => {
  test('curl: the agent token is verified and removed, the upstream credential added, Host and X-Forwarded-* are the sidecar’s', async () => {
    const r = await curl([
      '-H',
      `Authorization: Bearer ${h.token}`,
      '-H',
      'Host: evil.example',
      '-H',
      'X-Forwarded-For: 10.9.9.9',
      '-H',
      'Cookie: a=b',
      `${h.base}/echo?x=1`,
    ]);
    assert.equal(r.code, 0, r.stderr);
    const echo = JSON.parse(r.stdout) as { headers: Record<string, string>; url: string };
    // The upstream got the sidecar's credential; its echo of it reached the agent overwritten.
    assert.equal(up.seen.at(-1)?.headers.authorization, `Bearer ${UPSTREAM_TOKEN}`);
    assert.equal(echo.headers.authorization, '*'.repeat(`Bearer ${UPSTREAM_TOKEN}`.length));
    assert.equal(echo.headers.host, `127.0.0.1:${up.port}`);
    assert.equal(echo.headers['x-forwarded-for'], undefined);
    assert.equal(echo.url, '/echo?x=1');
    const events = await h.waitForSession(
      (evs) => find(evs, 'http.request', (p) => p.url === '/echo?x=1').length > 0,
    );
    const start = events[0]!.payload as { identity: { subject: string }; protocol: string };
    assert.equal(start.protocol, 'http');
    assert.equal(start.identity.subject, 'agent-alice');
    const req = find(events, 'http.request', (p) => p.url === '/echo?x=1')[0]!.payload as {
      headers: Record<string, string>;
    };
    assert.equal(req.headers.authorization, REDACTED);
    assert.equal(req.headers.cookie, REDACTED);
    const res = find(events, 'http.response')[0]!.payload as {
      status: number;
      headers: Record<string, string>;
      body: { text: string; bytes: number; sha256: string };
    };
    assert.equal(res.status, 200);
    assert.equal(res.headers['set-cookie'], REDACTED);
    assert.doesNotMatch(JSON.stringify(events), new RegExp(`${UPSTREAM_TOKEN}|${h.token.slice(-20)}`));
  });

  test('no token, a forged token: 401 and nothing reaches the upstream', async () => {
    const before = up.seen.length;
    const none = await curl(['-o', '/dev/null', '-w', '%{http_code}', `${h.base}/echo`]);
    assert.equal(none.stdout, '401');
    const forged = await curl([
      '-o',
      '/dev/null',
      '-w',
      '%{http_code}',
      '-H',
      `Authorization: Bearer ${h.token.slice(0, -4)}AAAA`,
      `${h.base}/echo`,
    ]);
    assert.equal(forged.stdout, '401');
    assert.equal(up.seen.length, before);
  });

  test('streaming both ways: a 64 MiB upload from a Node client and a 256 MiB download with curl, flat memory', async () => {
    const total = 64 * 1024 * 1024;
    const chunk = Buffer.alloc(1024 * 1024, 'u');
    const expected = createHash('sha256');
    async function* body() {
      for (let sent = 0; sent < total; sent += chunk.length) {
        expected.update(chunk);
        yield chunk;
      }
    }
    const res = await request(`${h.base}/upload`, {
      method: 'POST',
      headers: { authorization: `Bearer ${h.token}`, 'content-type': 'application/octet-stream' },
      body: Readable.from(body()),
    });
    const got = (await res.body.json()) as { bytes: number; sha256: string };
    const sha = expected.digest('hex');
    assert.deepEqual(got, { bytes: total, sha256: sha });

    const rssBefore = process.memoryUsage().rss;
    let peak = rssBefore;
    const sampler = setInterval(() => {
      peak = Math.max(peak, process.memoryUsage().rss);
    }, 50);
    const dl = 256 * 1024 * 1024;
    const r = await curl([
      '-o',
      '/dev/null',
      '-w',
      '%{size_download}',
      '-H',
      `Authorization: Bearer ${h.token}`,
      `${h.base}/download?bytes=${dl}`,
    ]);
    clearInterval(sampler);
    assert.equal(r.stdout, String(dl));
    assert.ok(peak - rssBefore < 96 * 1024 * 1024, `sidecar process grew ${(peak - rssBefore) >> 20} MiB`);

    const events = await h.waitForSession(
      (evs) => find(evs, 'http.request', (p) => p.url === '/upload').length > 0,
    );
    const upload = find(events, 'http.request', (p) => p.url === '/upload')[0]!.payload as {
      body: { bytes: number; sha256: string; truncated: boolean; text: string };
    };
    assert.equal(upload.body.bytes, total);
    assert.equal(upload.body.sha256, sha);
    assert.equal(upload.body.truncated, true);
    assert.equal(upload.body.text.length, 1024);
  });

  test('durability strict: the upstream has the whole request body only once the request event is durable', async () => {
    // Hook the recorder: hold the acknowledgement of the upload's request event until the upstream
    // has the whole body (or a second has passed). Under strict the body's last chunk waits for
    // that acknowledgement, so the upstream cannot have it yet.
    const recorder = (h.sidecar as unknown as { recorder: Recorder }).recorder;
    const start = recorder.startSession.bind(recorder);
    const url = `/upload?durable=${Date.now()}`;
    let ended = false;
    const endedBeforeDurable: boolean[] = [];
    const fresh = new Client(h.base);
    up.onUploadEnd = (u) => {
      if (u === url) ended = true;
    };
    recorder.startSession = async (...args) => {
      const session = await start(...args);
      const append = session.append.bind(session);
      session.append = (event) => {
        const appended = append(event);
        if (event.kind !== 'http.request' || event.payload.url !== url) return appended;
        return appended.then(async () => {
          for (const deadline = Date.now() + 1000; !ended && Date.now() < deadline; )
            await new Promise((r) => setTimeout(r, 10));
          endedBeforeDurable.push(ended);
        });
      };
      return session;
    };
    try {
      const chunk = Buffer.alloc(256 * 1024, 'd');
      // A connection of its own: a new session, started through the hooked recorder.
      const res = await request(`${h.base}${url}`, {
        dispatcher: fresh,
        method: 'POST',
        headers: {
          authorization: `Bearer ${h.token}`,
          'content-type': 'application/octet-stream',
          // A known length: the upstream knows the body is whole at its last byte.
          'content-length': String(3 * chunk.length),
        },
        body: Readable.from([chunk, chunk, chunk]),
      });
      assert.equal(res.statusCode, 200);
      assert.deepEqual(await res.body.json(), {
        bytes: 3 * chunk.length,
        sha256: createHash('sha256')
          .update(Buffer.concat([chunk, chunk, chunk]))
          .digest('hex'),
      });
    } finally {
      up.onUploadEnd = undefined;
      recorder.startSession = start;
      await fresh.close();
    }
    assert.deepEqual(endedBeforeDurable, [false]);
    assert.equal(ended, true);
  });

  test('a blocked method never reaches the upstream; the agent reads the rule', async () => {
    const before = up.seen.length;
    const r = await curl([
      '-X',
      'DELETE',
      '-w',
      '\n%{http_code}',
      '-H',
      `Authorization: Bearer ${h.token}`,
      `${h.base}/items/1`,
    ]);
    assert.match(r.stdout, /blocked by rule no-delete: deletes need a human\n+403$/);
    assert.equal(up.seen.length, before);
    const events = await h.waitForSession((evs) => find(evs, 'policy.blocked').length > 0);
    assert.equal(find(events, 'policy.blocked')[0]!.payload.rule, 'no-delete');
  });

  test('a JSON-body condition blocks the request it names; other bodies reach the upstream intact; an unreadable or oversized body is refused', async () => {
    const post = (body: string) =>
      request(`${h.base}/echo`, {
        method: 'POST',
        headers: { authorization: `Bearer ${h.token}`, 'content-type': 'application/json' },
        body,
      });
    const before = up.seen.length;
    const blocked = await post(JSON.stringify({ job: { action: 'wipe-everything' } }));
    assert.equal(blocked.statusCode, 403);
    assert.match(await blocked.body.text(), /blocked by rule no-wipe: wipes need a human/);
    const unreadable = await post('{"job": {"action": "wipe"');
    assert.equal(unreadable.statusCode, 403);
    await unreadable.body.text();
    assert.equal(up.seen.length, before, 'nothing blocked reached the upstream');
    // Over maskCapBytes (8 MiB): the guard cannot read it whole, so the condition holds.
    const huge = await post(JSON.stringify({ job: { action: 'list' }, pad: 'x'.repeat(9 * 1024 * 1024) }));
    assert.equal(huge.statusCode, 403);
    await huge.body.text();
    assert.equal(up.seen.length, before, 'nothing blocked reached the upstream');
    const fine = JSON.stringify({ job: { action: 'list' }, pad: 'x'.repeat(100_000) });
    const allowed = await post(fine);
    assert.equal(allowed.statusCode, 200);
    assert.equal(((await allowed.body.json()) as { body: string }).body, fine);
    // Both refusals recorded (the requests may have used different connections, so sessions).
    let blockedEvents = 0;
    for (const deadline = Date.now() + 20_000; blockedEvents < 3 && Date.now() < deadline; ) {
      blockedEvents = 0;
      for (const id of await h.sessionIds())
        blockedEvents += find(
          await h.events(id).catch(() => []),
          'policy.blocked',
          (p) => p.rule === 'no-wipe',
        ).length;
      if (blockedEvents < 3) await new Promise((r) => setTimeout(r, 200));
    }
    assert.equal(blockedEvents, 3);
  });

  test('requireApproval holds the request until a reviewer decides', async () => {
    const before = up.seen.length;
    const pending = curl([
      '-w',
      '\n%{http_code}',
      '-H',
      `Authorization: Bearer ${h.token}`,
      `${h.base}/admin/users`,
    ]);
    let waiting: Awaited<ReturnType<typeof listPendingLocalApprovals>> = [];
    while (waiting.length === 0) {
      waiting = await listPendingLocalApprovals(h.approvalsDir);
      if (waiting.length === 0) await new Promise((r) => setTimeout(r, 100));
    }
    assert.equal(up.seen.length, before, 'the request waits');
    assert.equal(waiting[0]!.statement, 'GET /admin/users');
    await decideLocalApproval(h.approvalsDir, waiting[0]!.id, { approved: true, approver: 'ann' });
    const r = await pending;
    assert.match(r.stdout, /200$/);
    assert.equal(up.seen.at(-1)?.url, '/admin/users');
    const events = await h.waitForSession((evs) => find(evs, 'approval.granted').length > 0);
    assert.equal(find(events, 'approval.granted')[0]!.payload.approver, 'ann');
  });

  test('masking: named JSON fields and detected e-mail addresses never reach the agent', async () => {
    const r = await curl([
      '-H',
      `Authorization: Bearer ${h.token}`,
      '-H',
      'Accept-Encoding: gzip',
      `${h.base}/users`,
    ]);
    const doc = JSON.parse(r.stdout) as { users: { name: string; email: string; ssn: string }[] };
    assert.equal(doc.users[0]!.name, 'Ann');
    assert.doesNotMatch(r.stdout, /ann@example\.com|078-05-1120/);
    const masked = (p: Record<string, unknown>) => p.rule === 'masking';
    const events = await h.waitForSession((evs) => find(evs, 'policy.masked', masked).length > 0);
    assert.deepEqual((find(events, 'policy.masked', masked)[0]!.payload.fields as string[]).sort(), [
      'users[0].email',
      'users[0].ssn',
    ]);
    assert.doesNotMatch(JSON.stringify(events), /ann@example\.com|078-05-1120/);
  });

  test('WebSocket: messages relayed both ways and recorded', async () => {
    const ws = new WebSocket(`ws://127.0.0.1:${h.port}/ws`, {
      headers: { authorization: `Bearer ${h.token}` },
    } as unknown as string[]);
    const got = await new Promise<string>((resolve, reject) => {
      ws.onopen = () => ws.send('hello upstream');
      ws.onmessage = (m) => resolve(String(m.data));
      ws.onerror = (e) =>
        reject(new Error(String((e as Event & { message?: string }).message ?? 'websocket error')));
    });
    assert.equal(got, 'echo: hello upstream');
    ws.close();
    const events = await h.waitForSession(
      (evs) => find(evs, 'http.websocket', (p) => p.opcode === 'text').length >= 2,
    );
    const texts = find(events, 'http.websocket', (p) => p.opcode === 'text').map((e) => [
      e.direction,
      Buffer.from(String(e.payload.data), 'base64').toString(),
    ]);
    assert.deepEqual(texts, [
      ['client', 'hello upstream'],
      ['server', 'echo: hello upstream'],
    ]);
  });

  test('HAR export of a recorded session is valid HAR 1.2 and holds the exchanges', async () => {
    const r = await curl(['-H', `Authorization: Bearer ${h.token}`, `${h.base}/echo?har=1`]);
    assert.equal(r.code, 0, r.stderr);
    const events = await h.waitForSession(
      (evs) =>
        find(evs, 'http.request', (p) => p.url === '/echo?har=1').length > 0 &&
        evs.at(-1)?.kind === 'session.end',
    );
    const id = String((events[0]!.payload as { sessionId: string }).sessionId);
    const out = join(h.dir, 'session.har');
    const io = { out: () => {}, err: () => {} };
    assert.equal(
      await run(['--store', h.storeUrl, 'sessions', 'export', id, '--format', 'har', '-o', out], io),
      0,
    );
    const doc = harSchema.parse(JSON.parse(await readFile(out, 'utf8'))) as {
      log: { entries: { request: { url: string }; response: { status: number } }[] };
    };
    assert.equal(doc.log.entries[0]!.request.url, `https://127.0.0.1:${up.port}/echo?har=1`);
    assert.equal(doc.log.entries[0]!.response.status, 200);
  });

  test('attacks: smuggling, absolute-form, Host tricks, path encodings, method overrides, h2c, HTTP/1.0', async () => {
    const raw = (text: string) =>
      new Promise<string>((resolve, reject) => {
        // Written, not ended: the sidecar closes each of these connections itself.
        const s = connect(h.port, '127.0.0.1', () => s.write(text));
        let got = '';
        s.on('data', (d: Buffer) => {
          got += d.toString('latin1');
        });
        s.on('close', () => resolve(got));
        s.on('error', reject);
      });
    const before = up.seen.length;
    const auth = `Authorization: Bearer ${h.token}\r\n`;
    // Content-Length and Transfer-Encoding together: refused by the parser before any handler.
    const smuggle = await raw(
      `POST /echo HTTP/1.1\r\nHost: x\r\n${auth}Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /admin HTTP/1.1\r\nHost: x\r\n\r\n`,
    );
    assert.match(smuggle, /^HTTP\/1\.1 400/);
    assert.doesNotMatch(smuggle, /200 OK/);
    // Duplicate Content-Length with different values.
    assert.match(
      await raw(`POST /echo HTTP/1.1\r\nHost: x\r\n${auth}Content-Length: 1\r\nContent-Length: 2\r\n\r\nab`),
      /^HTTP\/1\.1 400/,
    );
    // Absolute-form naming another host, and CONNECT.
    assert.match(
      await raw(`GET http://169.254.169.254/latest HTTP/1.1\r\nHost: 169.254.169.254\r\n${auth}\r\n`),
      /^HTTP\/1\.1 400/,
    );
    assert.match(
      await raw(`CONNECT 10.0.0.1:443 HTTP/1.1\r\nHost: 10.0.0.1:443\r\n${auth}\r\n`),
      /^HTTP\/1\.1 (400|405)/,
    );
    // Path encodings that would dodge "^/admin": refused outright.
    for (const path of [
      '/x/%2e%2e/admin',
      '/x/../admin',
      '//admin',
      '/%2fadmin',
      '/x%5c..%5cadmin',
      '/%252e%252e/admin',
    ]) {
      assert.match(
        await raw(`GET ${path} HTTP/1.1\r\nHost: x\r\n${auth}Connection: close\r\n\r\n`),
        /^HTTP\/1\.1 400/,
        path,
      );
    }
    const override = await raw(
      `POST /items/1 HTTP/1.1\r\nHost: x\r\n${auth}X-HTTP-Method-Override: DELETE\r\nContent-Length: 0\r\nConnection: close\r\n\r\n`,
    );
    assert.match(override, /^HTTP\/1\.1 403/);
    assert.match(override, /method override/);
    // h2c upgrade: refused, only WebSocket upgrades pass.
    assert.match(
      await raw(
        `GET /echo HTTP/1.1\r\nHost: x\r\n${auth}Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAoAAAAAIAAAAA\r\n\r\n`,
      ),
      /^HTTP\/1\.1 400/,
    );
    // Header injection through an encoded CR LF in the path is not a header upstream.
    assert.match(
      await raw(`GET /echo%0d%0aX-Injected:%201 HTTP/1.1\r\nHost: x\r\n${auth}Connection: close\r\n\r\n`),
      /^HTTP\/1\.1 400/,
    );
    assert.equal(up.seen.length, before, 'none of these reached the upstream');
    // HTTP/1.0 works, with the upstream's Host whatever the agent wrote.
    const old = await raw(`GET /echo HTTP/1.0\r\nHost: evil.example\r\n${auth}\r\n`);
    assert.match(old, /^HTTP\/1\.[01] 200/);
    assert.equal(up.seen.at(-1)?.headers.host, `127.0.0.1:${up.port}`);
  });
});
