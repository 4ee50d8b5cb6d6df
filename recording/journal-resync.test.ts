// A damaged record in the middle of a journal file costs that record only: the reader resynchronises
// on the next record that validates. Single-byte damage anywhere never throws, never loses an intact
// record and never yields an event that was not written.
import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { mulberry32, testSeed } from '../test/testing/random.ts';
import { Journal, type JournalEntry, journalFileName, readJournalFile, sessionTag } from './journal.ts';
import { SegmentBuffer } from './segment-buffer.ts';
import { tempDir } from './testing/fixtures.ts';

interface Written {
  start: number;
  end: number;
  sessionId: string;
  seq: number;
  line: string;
}

/**
 * Writes a journal with interleaved sessions and returns its bytes and where each record lies.
 * Some payloads contain `{"seq":` themselves, the pattern the resync scans for.
 */
async function writeJournal(
  name: string,
  plan: { sessionId: string; payload: string }[],
): Promise<{ path: string; whole: Buffer; records: Written[] }> {
  const dir = await tempDir(name);
  const j = await Journal.open(dir, 1024 * 1024 * 1024);
  const sink = new SegmentBuffer();
  const seqs = new Map<string, number>();
  const records: Written[] = [];
  let pos = 8;
  for (const { sessionId, payload } of plan) {
    const seq = seqs.get(sessionId) ?? 0;
    seqs.set(sessionId, seq + 1);
    const head = `{"seq":${seq},"wallMs":1,"monoNs":"1","direction":"client","kind":"pg.query","payload":`;
    const size = j.append(sessionTag(sessionId), head, payload, sink);
    records.push({ start: pos, end: pos + size, sessionId, seq, line: `${head}${payload}}` });
    pos += size;
  }
  await j.commit();
  await j.close();
  const path = join(dir, journalFileName(j.fileNo));
  return { path, whole: await readFile(path), records };
}

function samplePlan(random: () => number, count: number): { sessionId: string; payload: string }[] {
  const ids = ['0190aa-alpha', '0190ab-beta', 'g'];
  return Array.from({ length: count }, (_, i) => {
    const sessionId = ids[Math.floor(random() * ids.length)]!;
    const size = Math.floor(random() * (i % 7 === 0 ? 3000 : 120));
    const payload =
      i % 5 === 0
        ? JSON.stringify({ seq: i, nested: { seq: -1 }, text: 'x'.repeat(size) })
        : JSON.stringify({ n: i, sql: 'y'.repeat(size) });
    return { sessionId, payload };
  });
}

const key = (e: { sessionId: string; seq: number }) => `${e.sessionId}:${e.seq}`;

function recordsOf(entries: JournalEntry[]): { sessionId: string; seq: number; line: string }[] {
  return entries.flatMap((e) =>
    e.type === 'record' ? [{ sessionId: e.sessionId, seq: e.seq, line: e.line.toString('utf8') }] : [],
  );
}

describe('journal resynchronisation', () => {
  test('a flipped body byte loses that record only; the neighbours name the lost seq', async () => {
    const plan = Array.from({ length: 10 }, (_, i) => ({ sessionId: 's1', payload: `{"n":${i}}` }));
    const { path, whole, records } = await writeJournal('resync-body', plan);
    const victim = records[4]!;
    const bad = Buffer.from(whole);
    bad[victim.end - 3]! ^= 0x01;
    await writeFile(path, bad);
    const entries = [...readJournalFile(path, 64)];
    assert.deepEqual(
      entries.map((e) => (e.type === 'record' ? e.seq : 'torn')),
      [0, 1, 2, 3, 'torn', 5, 6, 7, 8, 9],
    );
    const torn = entries[4]!;
    assert.ok(torn.type === 'torn');
    assert.equal(torn.offset, victim.start);
    assert.equal(torn.bytes, victim.end - victim.start);
    assert.equal(torn.resumed, true);
    assert.equal(torn.sessionId, 's1');
    assert.equal(torn.fromSeq, 4);
    assert.equal(torn.toSeq, 4);
    assert.match(torn.why, /^record checksum mismatch; resynchronised at offset \d+$/);
  });

  for (const [label, value] of [
    ['longer (still inside the file)', (l: number) => l + 40],
    ['longer than the file', () => 10_000_000],
    ['shorter', (l: number) => l - 7],
    ['zero', () => 0],
    ['implausibly large', () => 0xffffffff],
  ] as const) {
    test(`a corrupt length field (${label}) loses that record only`, async () => {
      const plan = Array.from({ length: 12 }, (_, i) => ({
        sessionId: i % 2 ? 'odd' : 'even',
        payload: `{"n":${i},"pad":"${'p'.repeat(i * 10)}"}`,
      }));
      const { path, whole, records } = await writeJournal('resync-length', plan);
      const victim = records[6]!;
      const bad = Buffer.from(whole);
      bad.writeUInt32LE(value(bad.readUInt32LE(victim.start)), victim.start);
      await writeFile(path, bad);
      const entries = [...readJournalFile(path, 128)];
      const expected = records.filter((r) => r !== victim).map(key);
      assert.deepEqual(recordsOf(entries).map(key), expected, 'every other record, in order');
      const torn = entries.filter((e) => e.type === 'torn');
      assert.equal(torn.length, 1);
      assert.equal(torn[0]!.offset, victim.start);
      assert.equal(torn[0]!.bytes, victim.end - victim.start);
      assert.equal(torn[0]!.resumed, true);
      // even:0..5 then a hole at even:3 (record 6 is the 4th of "even"): the neighbours differ, so the
      // range comes from the tag that is still readable.
      assert.equal(torn[0]!.sessionId, 'even');
    });
  }

  test('a damaged file header does not cost the records behind it', async () => {
    const plan = Array.from({ length: 5 }, (_, i) => ({ sessionId: 's', payload: `{"n":${i}}` }));
    const { path, whole } = await writeJournal('resync-magic', plan);
    const bad = Buffer.from(whole);
    bad[3]! ^= 0xff;
    await writeFile(path, bad);
    const entries = [...readJournalFile(path)];
    assert.deepEqual(
      entries.map((e) => (e.type === 'record' ? e.seq : `torn ${e.offset}+${e.bytes}`)),
      ['torn 0+8', 0, 1, 2, 3, 4],
    );
    // A file that is no journal at all is one torn stretch, as before.
    await writeFile(path, Buffer.from('not a journal, just text {"seq":1,"x":2}'));
    const foreign = [...readJournalFile(path)];
    assert.equal(foreign.length, 1);
    assert.equal(foreign[0]!.type === 'torn' && foreign[0]!.resumed, false);
  });

  test('a torn tail is still the rest of the file', async () => {
    const plan = Array.from({ length: 6 }, (_, i) => ({ sessionId: 's', payload: `{"n":${i}}` }));
    const { path, whole, records } = await writeJournal('resync-tail', plan);
    const last = records.at(-1)!;
    await writeFile(path, whole.subarray(0, last.end - 5));
    const entries = [...readJournalFile(path)];
    const torn = entries.at(-1)!;
    assert.equal(recordsOf(entries).length, 5);
    assert.ok(torn.type === 'torn');
    assert.equal(torn.resumed, false);
    assert.equal(torn.offset, last.start);
    assert.equal(torn.bytes, last.end - 5 - last.start);
    assert.match(torn.why, /^record cut short/);
    assert.equal(torn.sessionId, 's');
  });

  test('fuzz: random single-byte damage never throws, never loses an intact record, never invents one', async () => {
    // Every failure message names the seed: CHAPERONE_SEED=<seed> replays the run.
    const seed = testSeed();
    const random = mulberry32(seed);
    const { path, whole, records } = await writeJournal('resync-fuzz', samplePlan(random, 60));
    const written = new Map(records.map((r) => [key(r), r.line]));
    const rounds = 400;
    for (let round = 0; round < rounds; round++) {
      const at = Math.floor(random() * whole.length);
      const xor = 1 + Math.floor(random() * 255);
      const bad = Buffer.from(whole);
      bad[at]! ^= xor;
      await writeFile(path, bad);
      const where = `seed ${seed} (CHAPERONE_SEED=${seed} reruns it), round ${round}: byte ${at} ^= ${xor}`;
      let entries: JournalEntry[];
      try {
        entries = [...readJournalFile(path, 1 + Math.floor(random() * 4096))];
      } catch (err) {
        assert.fail(`${where}: threw ${(err as Error).message}`);
      }
      const got = recordsOf(entries);
      for (const r of got) assert.equal(written.get(key(r)), r.line, `${where}: invented ${key(r)}`);
      const intact = records.filter((r) => at < r.start || at >= r.end).map(key);
      assert.deepEqual(
        got.map(key).filter((k) => intact.includes(k)),
        intact,
        `${where}: an intact record is missing`,
      );
      const tornBytes = entries.reduce((n, e) => n + (e.type === 'torn' ? e.bytes : 0), 0);
      assert.ok(tornBytes > 0, `${where}: the damage is reported`);
    }
  });
});
