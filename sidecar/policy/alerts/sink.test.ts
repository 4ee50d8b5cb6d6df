import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { after, describe, it } from 'node:test';
import { pino } from 'pino';
import { until as waitUntil } from '../../../test/testing/until.ts';
import { createAlertSink } from './sink.ts';
import { slackPayload } from './slack.ts';
import type { Alert } from './types.ts';

/** A real HTTP server standing in for a Slack incoming webhook. */
async function startSink(status: () => number = () => 200) {
  const received: { text: string; blocks?: unknown[] }[] = [];
  let requests = 0;
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      requests++;
      const code = status();
      if (code === 200) received.push(JSON.parse(Buffer.concat(chunks).toString('utf8')));
      res.writeHead(code, { 'content-type': 'text/plain' }).end(code === 200 ? 'ok' : 'no');
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as AddressInfo).port;
  after(() => server.close());
  return {
    url: `http://127.0.0.1:${port}/hooks/T000/B000/secret`,
    received,
    server,
    port,
    requests: () => requests,
  };
}

function captureLogger() {
  const lines: Record<string, unknown>[] = [];
  const stream = new Writable({
    write(chunk, _enc, cb) {
      lines.push(JSON.parse(chunk.toString()));
      cb();
    },
  });
  return { logger: pino({ level: 'debug' }, stream), lines };
}

const blocked: Alert = {
  kind: 'blocked',
  sessionId: 'sess-1',
  subject: 'system:serviceaccount:agents:bot',
  target: 'db',
  rule: 'no-drop',
  statement: 'DROP TABLE users -- <b>&',
  message: 'DROP is not allowed',
};

const until = (check: () => boolean, what: string) => waitUntil(what, check);

describe('alert sink', () => {
  it('delivers Slack-compatible JSON to the webhook and logs the alert', async () => {
    const sink = await startSink();
    const { logger, lines } = captureLogger();
    const alerts = createAlertSink({ webhookUrl: sink.url, on: ['blocked', 'deniedSubject'] }, logger);
    alerts.send(blocked);
    alerts.send({ ...blocked, kind: 'alert', message: 'not in on: logged only' });
    await until(() => sink.received.length === 1, 'delivery');
    const [payload] = sink.received;
    assert.match(
      payload!.text,
      /Chaperone blocked a statement: DROP is not allowed \(target db, rule no-drop\)/,
    );
    assert.deepEqual(payload, slackPayload(blocked));
    const json = JSON.stringify(payload!.blocks);
    assert.ok(json.includes('DROP TABLE users -- &lt;b&gt;&amp;'), 'statement escaped in a code block');
    assert.ok(json.includes('system:serviceaccount:agents:bot'));
    await alerts.close();
    assert.equal(sink.received.length, 1, 'kinds not listed in `on` are not sent');
    const logged = lines.filter((l) => l.msg === 'policy blocked: DROP is not allowed');
    assert.equal(logged.length, 1);
    assert.equal((logged[0]!.alert as Alert).rule, 'no-drop');
    assert.ok(lines.some((l) => l.msg === 'policy alert: not in on: logged only'));
  });

  it('retries a failing webhook in the background', async () => {
    let failures = 2;
    const sink = await startSink(() => (failures-- > 0 ? 503 : 200));
    const { logger } = captureLogger();
    const alerts = createAlertSink({ webhookUrl: sink.url, on: ['blocked'] }, logger, {
      initialBackoffMs: 10,
    });
    alerts.send(blocked);
    await until(() => sink.received.length === 1, 'delivery after retries');
    assert.equal(sink.requests(), 3);
    await alerts.close();
  });

  it('does not block while the sink is down, drops the oldest beyond the bound and counts them', async () => {
    // Reserve a port, then close it: connections are refused.
    const probe = await startSink();
    probe.server.close();
    await once(probe.server, 'close');
    const { logger, lines } = captureLogger();
    const alerts = createAlertSink({ webhookUrl: probe.url, on: ['blocked'] }, logger, {
      maxQueue: 5,
      initialBackoffMs: 20,
      maxBackoffMs: 40,
      maxAttempts: 1000,
    });
    const started = process.hrtime.bigint();
    for (let i = 0; i < 50; i++) alerts.send({ ...blocked, message: `alert ${i}` });
    const sendMs = Number(process.hrtime.bigint() - started) / 1e6;
    assert.ok(sendMs < 1000, `send() returned at once (took ${sendMs} ms for 50 alerts)`);
    const drops = lines.filter((l) => l.msg === 'alert dropped without delivery to the webhook');
    assert.deepEqual(
      drops.map((l) => l.droppedTotal),
      [1, 10],
      'the first drop and every power of ten are logged',
    );

    // The webhook comes back on the same port: the newest alerts get through.
    const back = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        delivered.push(JSON.parse(Buffer.concat(chunks).toString()).text);
        res.end('ok');
      });
    });
    const delivered: string[] = [];
    back.listen(probe.port, '127.0.0.1');
    await once(back, 'listening');
    after(() => back.close());
    await until(() => delivered.length >= 5, 'delivery of the queued alerts');
    assert.ok(delivered.at(-1)!.includes('alert 49'));
    for (let i = 1; i <= 45; i++) {
      assert.ok(
        !delivered.some((t) => t.includes(`alert ${i} `)),
        `alert ${i} was dropped as one of the oldest`,
      );
    }
    assert.ok(delivered[0]!.includes('alert 0 '), 'the alert in flight when the queue filled is not dropped');
    await until(
      () => lines.some((l) => l.msg === 'alert webhook reachable again; some alerts were dropped'),
      'recovery log',
    );
    await alerts.close();
  });

  it('drops alerts the webhook rejects permanently', async () => {
    const sink = await startSink(() => 400);
    const { logger, lines } = captureLogger();
    const alerts = createAlertSink({ webhookUrl: sink.url, on: ['blocked'] }, logger, {
      initialBackoffMs: 10,
    });
    alerts.send(blocked);
    await until(() => lines.some((l) => l.reason === 'webhook rejected the alert'), 'drop');
    assert.equal(sink.requests(), 1);
    await alerts.close();
  });

  it('reads the webhook URL from a file and never logs it', async () => {
    const sink = await startSink();
    const dir = await mkdtemp(join(tmpdir(), 'chaperone-alerts-'));
    after(() => rm(dir, { recursive: true, force: true }));
    await writeFile(join(dir, 'url'), `${sink.url}\n`);
    const { logger, lines } = captureLogger();
    const alerts = createAlertSink({ webhookUrlFile: join(dir, 'url'), on: ['blocked'] }, logger);
    alerts.send(blocked);
    await until(() => sink.received.length === 1, 'delivery');
    await alerts.close();
    const broken = createAlertSink({ webhookUrlFile: join(dir, 'missing'), on: ['blocked'] }, logger);
    broken.send(blocked);
    await broken.close();
    assert.ok(lines.some((l) => String(l.msg).includes('alerts are only logged')));
    assert.ok(!JSON.stringify(lines).includes('secret'), 'webhook URL not in the log');
  });

  it('close() returns within its bound when the sink hangs', async () => {
    const hanging = createServer(() => {
      // never answers
    });
    hanging.listen(0, '127.0.0.1');
    await once(hanging, 'listening');
    after(() => {
      hanging.closeAllConnections();
      hanging.close();
    });
    const { logger, lines } = captureLogger();
    const url = `http://127.0.0.1:${(hanging.address() as AddressInfo).port}/`;
    // The request itself would hang for 10 minutes: only the close bound can end the wait.
    const alerts = createAlertSink({ webhookUrl: url, on: ['blocked'] }, logger, {
      closeTimeoutMs: 200,
      requestTimeoutMs: 600_000,
    });
    alerts.send(blocked);
    await once(hanging, 'request');
    const started = performance.now();
    await alerts.close();
    const took = performance.now() - started;
    assert.ok(took >= 195, `close() waited for the undelivered alert up to its bound (${took} ms)`);
    assert.ok(took < 60_000, `close() returned at its bound, not when the request ended (${took} ms)`);
    assert.ok(lines.some((l) => l.msg === 'alert sink closed with undelivered alerts'));
  });
});
