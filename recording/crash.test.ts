// The writer process is SIGKILLed mid-session; the next recorder on the same spool seals and
// uploads what the spool holds, and the recording says it was recovered.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { appendFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { describe, test } from 'node:test';
import { crc32 } from 'node:zlib';
import { testEnv } from '../test/env/index.ts';
import {
  generateSigningKey,
  getSessionIndex,
  listSessions,
  openRecorder,
  openStore,
  type RecordedEvent,
  readSession,
  verifySession,
} from './index.ts';
import { s3OptionsFor, s3UrlFor, tempDir } from './testing/fixtures.ts';

const env = await testEnv(['minio']);
const s3 = s3OptionsFor(env.minio);

/** Runs the crash writer until `enough` events are acknowledged in total, then kill -9. */
async function runAndKill(config: object, enough: number): Promise<Map<string, number>> {
  const child = spawn(process.execPath, [new URL('./testing/crash-writer.ts', import.meta.url).pathname], {
    env: { ...process.env, CRASH_WRITER_CONFIG: JSON.stringify(config) },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const acked = new Map<string, number>();
  const exited = new Promise<NodeJS.Signals | null>((resolve) =>
    child.on('exit', (_code, signal) => resolve(signal)),
  );
  for await (const line of createInterface({ input: child.stdout })) {
    const [what, id, n] = line.split(' ');
    if (what === 'started') acked.set(id!, 0);
    if (what === 'acked') acked.set(id!, Number(n));
    const total = [...acked.values()].reduce((a, b) => a + b, 0);
    if (total >= enough && child.exitCode === null && !child.killed) child.kill('SIGKILL');
  }
  assert.equal(await exited, 'SIGKILL');
  return acked;
}

async function eventsOf(url: string, id: string): Promise<RecordedEvent[]> {
  const out: RecordedEvent[] = [];
  for await (const e of readSession(openStore(url, s3), id)) out.push(e);
  return out;
}

describe('writer killed with SIGKILL', () => {
  test('every acknowledged event is uploaded after restart; the recording says recovered; verify passes', async () => {
    const dir = await tempDir('crash');
    const key = generateSigningKey();
    const url = s3UrlFor(env.minio, 'crash');
    const spoolDir = join(dir, 'spool');
    const acked = await runAndKill(
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
      const recovered = events.find((e) => e.kind === 'recording.recovered');
      assert.ok(recovered, 'a recording.recovered event');
      assert.equal(events.at(-1)!.kind, 'session.end');
      assert.match(String(events.at(-1)!.payload.reason), /^recovered/);
      assert.equal(events.at(-1)!.payload.recovered, true);
      const index = await getSessionIndex(store, id);
      assert.equal(index?.status, 'recovered');
      assert.equal(index?.recovered, true);
      const report = await verifySession(store, id, key.publicKeyPem);
      assert.equal(report.ok, true, JSON.stringify(report.failure));
      assert.equal(report.recovered, true);
      assert.equal(report.complete, true);
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
    const acked = await runAndKill({ spoolDir, store: url, signingKey: key.privateKeyPem, sessions: 1 }, 500);
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
    const gap = events.find((e) => e.kind === 'recording.gap');
    assert.ok(gap, 'a gap event notes the cut');
    assert.equal(gap.payload.cause, 'torn-record');
    assert.equal(gap.payload.events, 1);
    assert.equal(gap.payload.bytes, 8 + body.length - 40);
    assert.match(String(gap.payload.reason), /cut short/);
    const recovered = events.find((e) => e.kind === 'recording.recovered')!;
    assert.equal(recovered.payload.tornRecords, 1);
    const report = await verifySession(openStore(url), id, key.publicKeyPem);
    assert.equal(report.ok, true, JSON.stringify(report.failure));
    assert.equal(report.gaps, 1);
  });
});
