// The writer process is SIGKILLed mid-session; the next recorder on the same spool seals and
// uploads what the spool holds, and the recording says it was recovered.
import assert from 'node:assert/strict';
import { appendFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { crc32 } from 'node:zlib';
import { testEnv } from '../test/env/index.ts';
import {
  DEFAULT_MAX_UNSETTLED_APPENDS,
  generateSigningKey,
  getSessionIndex,
  listSessions,
  openRecorder,
  openStore,
  verifySession,
} from './index.ts';
import { runAndKill } from './testing/crash-run.ts';
import { collectEvents, s3OptionsFor, s3UrlFor, tempDir } from './testing/fixtures.ts';

const env = await testEnv(['minio']);
const s3 = s3OptionsFor(env.minio);

const eventsOf = (url: string, id: string) => collectEvents(openStore(url, s3), id);

describe('writer killed with SIGKILL', () => {
  test('every acknowledged event is uploaded after restart; the recording says recovered; verify passes', async () => {
    const dir = await tempDir('crash');
    const key = generateSigningKey();
    const url = s3UrlFor(env.minio, 'crash');
    const spoolDir = join(dir, 'spool');
    const { acked } = await runAndKill(
      { spoolDir, store: url, s3, signingKey: key.privateKeyPem, sessions: 3 },
      6000,
    );
    assert.equal(acked.size, 3);
    assert.ok((await readdir(join(spoolDir, 'journal'))).length > 0, 'the dead writer left its journal');

    const rec = await openRecorder({ spoolDir, store: url, s3, signingKey: key.privateKeyPem });
    assert.equal(rec.status().recoveredSessions, 3);
    await rec.close({ deadlineMs: 60_000 });
    assert.deepEqual(
      await readdir(join(spoolDir, 'sessions')),
      [],
      'the spool is empty once the store has it',
    );

    const store = openStore(url, s3);
    for (const [id, n] of acked) {
      const events = await eventsOf(url, id);
      const ns = events.filter((e) => e.kind === 'pg.query').map((e) => e.payload.n as number);
      assert.ok(ns.length >= n, `session ${id}: ${ns.length} events kept, ${n} acknowledged`);
      assert.deepEqual(
        ns.slice(0, n),
        Array.from({ length: n }, (_, i) => i),
        'acknowledged events in order, none missing',
      );
      const recoveredAt = events.findIndex((e) => e.kind === 'recording.recovered');
      assert.ok(recoveredAt > 0, 'a recording.recovered event');
      const lastKept = events[recoveredAt - 1]!.seq;
      const gaps = events.filter((e) => e.kind === 'recording.gap');
      assert.equal(gaps.length, 1, 'one gap: the crash');
      assert.deepEqual(
        { ...gaps[0]!.payload, reason: undefined },
        {
          cause: 'crash',
          reason: undefined,
          afterSeq: lastKept,
          events: 0,
          maxEvents: DEFAULT_MAX_UNSETTLED_APPENDS,
          bytes: 0,
        },
      );
      assert.match(String(gaps[0]!.payload.reason), new RegExp(`after seq ${lastKept} .* at most 1024`));
      const end = events.at(-1)!;
      assert.equal(end.kind, 'session.end');
      assert.match(String(end.payload.reason), /^recovered/);
      assert.equal(end.payload.recovered, true);
      assert.equal(end.payload.gaps, 1, 'session.end counts the crash gap');
      assert.equal(end.payload.lostEvents, 0, 'a bound, not a known loss');
      const index = await getSessionIndex(store, id);
      assert.equal(index?.status, 'recovered');
      assert.equal(index?.recovered, true);
      const report = await verifySession(store, id, key.publicKeyPem);
      assert.equal(report.ok, true, JSON.stringify(report.failure));
      assert.equal(report.recovered, true);
      assert.equal(report.complete, true);
      assert.equal(report.gaps, 1);
      assert.equal(index?.gaps, 1);
    }
    let listed = 0;
    for await (const s of listSessions(store, { namespace: 'crash' })) {
      assert.equal(s.status, 'recovered');
      listed++;
    }
    assert.equal(listed, 3);
  });

  test('a torn last record is cut and noted by a gap event', async () => {
    const dir = await tempDir('torn');
    const key = generateSigningKey();
    const url = `file://${join(dir, 'store')}`;
    const spoolDir = join(dir, 'spool');
    const { acked } = await runAndKill(
      { spoolDir, store: url, signingKey: key.privateKeyPem, sessions: 1 },
      500,
    );
    const [id, n] = [...acked][0]!;
    // A record whose write was cut by the crash: header and session id, then half its body.
    const journals = (await readdir(join(spoolDir, 'journal'))).sort();
    const tag = Buffer.concat([Buffer.from([id.length]), Buffer.from(id)]);
    const body = Buffer.concat([
      tag,
      Buffer.from(
        `{"seq":999999,"wallMs":1,"monoNs":"1","direction":"client","kind":"pg.query","payload":{"n":-1}}`,
      ),
    ]);
    const header = Buffer.alloc(8);
    header.writeUInt32LE(body.length, 0);
    header.writeUInt32LE(crc32(body), 4);
    await appendFile(
      join(spoolDir, 'journal', journals.at(-1)!),
      Buffer.concat([header, body.subarray(0, body.length - 40)]),
    );

    const rec = await openRecorder({ spoolDir, store: url, signingKey: key.privateKeyPem });
    await rec.close();
    const events = await eventsOf(url, id);
    const ns = events.filter((e) => e.kind === 'pg.query').map((e) => e.payload.n as number);
    assert.deepEqual(
      ns.slice(0, n),
      Array.from({ length: n }, (_, i) => i),
    );
    assert.ok(!ns.includes(-1), 'the torn record is cut');
    const recoveredAt = events.findIndex((e) => e.kind === 'recording.recovered');
    const lastKept = events[recoveredAt - 1]!.seq;
    const [gap, crash, ...more] = events.filter((e) => e.kind === 'recording.gap');
    assert.ok(gap, 'a gap event notes the cut');
    assert.equal(gap.payload.cause, 'torn-record');
    assert.equal(gap.payload.events, 1);
    assert.equal(gap.payload.afterSeq, lastKept);
    assert.equal(gap.payload.bytes, 8 + body.length - 40);
    assert.match(String(gap.payload.reason), /cut short/);
    assert.equal(crash?.payload.cause, 'crash', 'and the crash bound follows');
    assert.equal(crash?.payload.afterSeq, lastKept);
    assert.deepEqual(more, []);
    const recovered = events[recoveredAt]!;
    assert.equal(recovered.payload.tornRecords, 1);
    assert.equal(events.at(-1)!.payload.gaps, 2);
    assert.equal(events.at(-1)!.payload.lostEvents, 1);
    const report = await verifySession(openStore(url), id, key.publicKeyPem);
    assert.equal(report.ok, true, JSON.stringify(report.failure));
    assert.equal(report.gaps, 2);
    assert.equal(report.lostEvents, 1);
  });
});
