// A lost stretch is never silent: a writer killed mid-session leaves a signed `crash` gap with the
// bound of what may be missing; a damaged journal record in the middle of the spool's journal costs
// that record only, and its seq range becomes a signed `torn-record` gap. Real MinIO store.
import assert from 'node:assert/strict';
import { readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { testEnv } from '../test/env/index.ts';
import {
  generateSigningKey,
  getSessionIndex,
  openRecorder,
  openStore,
  type RecordedEvent,
  verifySession,
} from './index.ts';
import { type JournalRecordAt, journalRecords, runAndKill } from './testing/crash-run.ts';
import { collectEvents, s3OptionsFor, s3UrlFor, tempDir } from './testing/fixtures.ts';

const env = await testEnv(['minio']);
const s3 = s3OptionsFor(env.minio);

const eventsOf = (url: string, id: string) => collectEvents(openStore(url, s3), id);

const gapsOf = (events: RecordedEvent[]) => events.filter((e) => e.kind === 'recording.gap');

/**
 * The gap for a record that the SIGKILL cut in the middle of its write (the journal's torn tail),
 * if the cut record still names its session. Whether the kill lands mid-write is chance, so the
 * damaged-record tests allow it, once, next to the damage they made.
 */
const isCutAtCrash = (gap: RecordedEvent) =>
  gap.payload.cause === 'torn-record' && /^journal record cut at crash/.test(String(gap.payload.reason));

describe('crash gap', () => {
  test('a killed writer leaves a crash gap with its declared bound; a cleanly ended session gets none', async () => {
    const dir = await tempDir('crash-gap');
    const key = generateSigningKey();
    const url = s3UrlFor(env.minio, 'crash-gap');
    const spoolDir = join(dir, 'spool');
    const bound = 48;
    const { acked, ended } = await runAndKill(
      {
        spoolDir,
        store: url,
        s3,
        signingKey: key.privateKeyPem,
        sessions: 3,
        batch: bound,
        maxUnsettledAppends: bound,
        endFirstAfter: 200,
      },
      3000,
    );
    assert.equal(ended.size, 1, 'session 0 ended before the kill');
    // The next process is configured with another bound: the dead writer's bound is the one declared.
    const rec = await openRecorder({
      spoolDir,
      store: url,
      s3,
      signingKey: key.privateKeyPem,
      maxUnsettledAppends: 5000,
    });
    assert.equal(rec.status().recoveredSessions, 2);
    await rec.close({ deadlineMs: 60_000 });
    const store = openStore(url, s3);

    const [cleanId] = [...ended];
    const clean = await eventsOf(url, cleanId!);
    assert.deepEqual(gapsOf(clean), [], 'no gap in a cleanly ended session');
    assert.equal(clean.at(-1)!.kind, 'session.end');
    assert.equal(clean.at(-1)!.payload.gaps, 0);
    assert.equal(clean.at(-1)!.payload.recovered, false);
    const cleanReport = await verifySession(store, cleanId!, key.publicKeyPem);
    assert.equal(cleanReport.ok, true, JSON.stringify(cleanReport.failure));
    assert.equal(cleanReport.gaps, 0);
    assert.equal(cleanReport.recovered, false);

    for (const [id, n] of acked) {
      if (ended.has(id)) continue;
      const events = await eventsOf(url, id);
      const queries = events.filter((e) => e.kind === 'pg.query').map((e) => e.payload.n as number);
      assert.ok(queries.length >= n, `${id}: ${queries.length} kept, ${n} acknowledged`);
      const recoveredAt = events.findIndex((e) => e.kind === 'recording.recovered');
      assert.ok(recoveredAt > 0);
      const afterSeq = events[recoveredAt - 1]!.seq;
      const gaps = gapsOf(events);
      assert.equal(gaps.length, 1);
      const gap = gaps[0]!;
      assert.ok(gap.seq > afterSeq, 'the gap is recorded after what was kept');
      assert.equal(gap.direction, 'internal');
      assert.equal(gap.payload.cause, 'crash');
      assert.equal(gap.payload.afterSeq, afterSeq);
      assert.equal(gap.payload.maxEvents, bound, 'the bound the dead writer declared');
      assert.equal(gap.payload.events, 0);
      assert.match(String(gap.payload.reason), new RegExp(`after seq ${afterSeq} .*at most ${bound}`));
      const end = events.at(-1)!;
      assert.equal(end.kind, 'session.end');
      assert.equal(end.payload.gaps, 1);
      assert.equal(end.payload.recovered, true);
      const report = await verifySession(store, id, key.publicKeyPem);
      assert.equal(report.ok, true, JSON.stringify(report.failure));
      assert.equal(report.gaps, 1);
      assert.equal(report.lostEvents, 0);
      const index = await getSessionIndex(store, id);
      assert.equal(index?.gaps, 1);
      assert.equal(index?.countsByKind['recording.gap'], 1);
    }
  });
});

/** Kills a writer whose events all stay in the journal (nothing sealed), then damages one record. */
async function damagedSpool(
  name: string,
  /** Damages the victim's journal file in place, or returns what the file becomes instead. */
  damage: (bytes: Buffer, victim: JournalRecordAt, last: JournalRecordAt) => Buffer | undefined,
): Promise<{
  url: string;
  key: ReturnType<typeof generateSigningKey>;
  victim: JournalRecordAt;
  records: JournalRecordAt[];
  /** Bytes after the last whole record: a write the kill cut short. */
  tailBytes: number;
}> {
  const dir = await tempDir(name);
  const key = generateSigningKey();
  const url = s3UrlFor(env.minio, name);
  const spoolDir = join(dir, 'spool');
  await runAndKill(
    {
      spoolDir,
      store: url,
      s3,
      signingKey: key.privateKeyPem,
      sessions: 2,
      seal: { maxBytes: 64 * 1024 * 1024, maxMs: 600_000 },
    },
    800,
  );
  const records = await journalRecords(spoolDir);
  const [first] = records;
  assert.ok(first);
  const last = records.at(-1)!;
  // A cut tail the kill left, or one the damage makes by cutting the last record.
  const naturalTail = (await stat(last.file)).size - last.end;
  // A record of the first session in the middle: records of both sessions follow it.
  const ofFirst = records.filter((r) => r.sessionId === first.sessionId);
  const victim = ofFirst[Math.floor(ofFirst.length / 2)]!;
  assert.ok(records.filter((r) => r.start > victim.start && r.sessionId !== victim.sessionId).length > 10);
  const bytes = await readFile(victim.file);
  const damaged = damage(bytes, victim, last) ?? bytes;
  await writeFile(victim.file, damaged);
  const rec = await openRecorder({ spoolDir, store: url, s3, signingKey: key.privateKeyPem });
  assert.equal(rec.status().recoveredSessions, 2);
  await rec.close({ deadlineMs: 60_000 });
  const tailBytes = damaged.length < bytes.length ? damaged.length - last.start : naturalTail;
  return { url, key, victim, records, tailBytes };
}

async function assertOnlyVictimLost(
  url: string,
  key: ReturnType<typeof generateSigningKey>,
  victim: JournalRecordAt,
  records: JournalRecordAt[],
  tailBytes: number,
  reason: RegExp,
): Promise<string[]> {
  const store = openStore(url, s3);
  let cutRecords = 0;
  const cutOwners: string[] = [];
  for (const sessionId of new Set(records.map((r) => r.sessionId))) {
    const events = await eventsOf(url, sessionId);
    const journaled = records.filter((r) => r.sessionId === sessionId).map((r) => r.seq);
    const kept = new Set(events.map((e) => e.seq));
    const expectedLost = sessionId === victim.sessionId ? [victim.seq] : [];
    assert.deepEqual(
      journaled.filter((seq) => !kept.has(seq)),
      expectedLost,
      `${sessionId}: every journaled event but the damaged one is recovered`,
    );
    const cut = gapsOf(events).filter(isCutAtCrash);
    cutRecords += cut.length;
    if (cut.length > 0) cutOwners.push(sessionId);
    const torn = gapsOf(events).filter((g) => g.payload.cause === 'torn-record' && !isCutAtCrash(g));
    const report = await verifySession(store, sessionId, key.publicKeyPem);
    assert.equal(report.ok, true, `${sessionId}: ${JSON.stringify(report.failure)}`);
    if (sessionId !== victim.sessionId) {
      assert.deepEqual(torn, [], 'the other session lost nothing');
      assert.equal(report.gaps, 1 + cut.length, 'its crash gap (and the record the kill cut, if its)');
      continue;
    }
    assert.equal(torn.length, 1);
    const gap = torn[0]!.payload;
    assert.equal(gap.fromSeq, victim.seq);
    assert.equal(gap.toSeq, victim.seq);
    assert.equal(gap.events, 1);
    assert.equal(gap.bytes, victim.end - victim.start);
    assert.match(String(gap.reason), reason);
    assert.match(String(gap.reason), new RegExp(`events ${victim.seq}\\.\\.${victim.seq} are lost`));
    const end = events.at(-1)!;
    assert.equal(end.payload.gaps, 2 + cut.length, 'the torn record and the crash');
    assert.equal(end.payload.lostEvents, 1 + cut.length);
    assert.equal(report.gaps, 2 + cut.length);
    assert.equal(report.lostEvents, 1 + cut.length);
    const recovered = events.find((e) => e.kind === 'recording.recovered')!;
    assert.equal(recovered.payload.tornRecords, 1 + cut.length);
  }
  // A cut last record is declared by the session it names, and there is at most one.
  assert.ok(cutRecords <= (tailBytes > 0 ? 1 : 0), `${cutRecords} cut records, ${tailBytes} tail bytes`);
  return cutOwners;
}

describe('damaged journal record in the middle of the file', () => {
  test('a flipped body byte: every record after it is recovered; the gap names the lost seq; verify passes', async () => {
    const { url, key, victim, records, tailBytes } = await damagedSpool('torn-body', (bytes, v) => {
      bytes[v.end - 4]! ^= 0x10;
      return undefined;
    });
    await assertOnlyVictimLost(
      url,
      key,
      victim,
      records,
      tailBytes,
      /record checksum mismatch; resynchronised/,
    );
  });

  test('a corrupt length field: every record after it is recovered; the gap names the lost seq', async () => {
    const { url, key, victim, records, tailBytes } = await damagedSpool('torn-length', (bytes, v) => {
      bytes.writeUInt32LE(bytes.readUInt32LE(v.start) + 13, v.start);
      return undefined;
    });
    await assertOnlyVictimLost(
      url,
      key,
      victim,
      records,
      tailBytes,
      /record checksum mismatch; resynchronised/,
    );
  });

  test('a flipped body byte and a last record cut short: each is its own signed gap, in the right session', async () => {
    const { url, key, victim, records, tailBytes } = await damagedSpool('torn-and-cut', (bytes, v, last) => {
      bytes[v.end - 4]! ^= 0x10;
      // The kill's cut, made on purpose: the last record keeps its header, its session tag and the
      // start of its line, as a write cut short by SIGKILL does.
      const tag = 1 + bytes[last.start + 8]!;
      return bytes.subarray(0, last.start + 8 + tag + 20);
    });
    const last = records.at(-1)!;
    assert.ok(tailBytes > 0);
    const owners = await assertOnlyVictimLost(
      url,
      key,
      victim,
      records.slice(0, -1),
      tailBytes,
      /record checksum mismatch; resynchronised/,
    );
    assert.deepEqual(owners, [last.sessionId], 'the cut record is declared by the session it names');
  });

  test("a session's damaged first record: session.start is rebuilt from the spool state; verify passes", async () => {
    const { url, key, records, tailBytes } = await damagedSpool('torn-start', (bytes) => {
      // The first record of the file: the first session's session.start.
      bytes[8 + 8 + 40]! ^= 0x01;
      return undefined;
    });
    const first = records[0]!;
    assert.equal(first.seq, 0);
    const events = await eventsOf(url, first.sessionId);
    assert.equal(events[0]!.kind, 'session.start');
    assert.equal(events[0]!.seq, 0);
    assert.equal(events[0]!.payload.sessionId, first.sessionId);
    const recovered = events.find((e) => e.kind === 'recording.recovered')!;
    const cut = gapsOf(events).filter(isCutAtCrash);
    assert.ok(cut.length <= (tailBytes > 0 ? 1 : 0));
    assert.equal(recovered.payload.restoredStart, true);
    assert.equal(recovered.payload.tornRecords, 1 + cut.length);
    assert.deepEqual(
      gapsOf(events)
        .filter((g) => !isCutAtCrash(g))
        .map((g) => g.payload.cause),
      ['crash'],
      'nothing but the header was in the stretch, and the header is back',
    );
    const report = await verifySession(openStore(url, s3), first.sessionId, key.publicKeyPem);
    assert.equal(report.ok, true, JSON.stringify(report.failure));
  });
});
