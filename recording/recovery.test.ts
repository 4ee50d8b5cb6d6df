// JournalReplay on its own: which seq holes are losses, which a spool-full gap already declares,
// and which damaged stretches count as a session's cut last write.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { JournalEntry } from './journal.ts';
import { JournalReplay, type ReplayTarget } from './recovery.ts';

class FakeTarget implements ReplayTarget {
  readonly lastSealedSeq: number;
  readonly seqs: number[] = [];
  started = false;
  constructor(lastSealedSeq: number) {
    this.lastSealedSeq = lastSealedSeq;
  }
  ensureStart(): void {
    this.started = true;
  }
  replay(line: Buffer, seq: number) {
    this.seqs.push(seq);
    const ev = JSON.parse(line.toString('utf8'));
    return { kind: ev.kind as string, payload: ev.payload as Record<string, unknown> };
  }
}

const rec = (sessionId: string, seq: number, kind = 'pg.query', payload: object = {}): JournalEntry => ({
  type: 'record',
  sessionId,
  seq,
  line: Buffer.from(JSON.stringify({ seq, kind, payload })),
});
const torn = (bytes: number, sessionId?: string): JournalEntry => ({
  type: 'torn',
  bytes,
  offset: 100,
  why: 'record checksum mismatch',
  resumed: true,
  ...(sessionId ? { sessionId } : {}),
});

describe('JournalReplay', () => {
  test('a hole after a damaged stretch is a loss; sealed records are skipped and cost nothing', () => {
    const a = new FakeTarget(1);
    const replay = new JournalReplay(new Map([['a', a]]));
    for (const e of [
      rec('a', 0),
      torn(40, 'a'),
      rec('a', 1),
      rec('a', 2),
      torn(70),
      rec('b', 9),
      rec('a', 5),
    ])
      replay.add(e);
    assert.deepEqual(a.seqs, [2, 5]);
    assert.deepEqual(replay.lossesOf('a'), {
      recoveredEvents: 2,
      holes: [{ fromSeq: 3, toSeq: 4, bytes: 70, why: 'record checksum mismatch' }],
      tornRecords: 1,
      tornBytes: 70,
    });
  });

  test('a hole that a spool-full gap declares is no loss; the part it does not declare is', () => {
    const a = new FakeTarget(-1);
    const replay = new JournalReplay(new Map([['a', a]]));
    replay.add(rec('a', 0, 'session.start'));
    replay.add(rec('a', 1));
    replay.add(rec('a', 5, 'recording.gap', { cause: 'spool-full', fromSeq: 2, toSeq: 4, events: 3 }));
    assert.deepEqual(replay.lossesOf('a').holes, []);
    replay.add(torn(50));
    replay.add(rec('a', 9, 'recording.gap', { cause: 'spool-full', fromSeq: 8, toSeq: 8, events: 1 }));
    assert.deepEqual(replay.lossesOf('a').holes, [
      { fromSeq: 6, toSeq: 7, bytes: 50, why: 'record checksum mismatch' },
    ]);
  });

  test('stretches naming a session after its last record are its cut tail; a lost start is restored', () => {
    const a = new FakeTarget(-1);
    const b = new FakeTarget(-1);
    const replay = new JournalReplay(
      new Map<string, ReplayTarget>([
        ['a', a],
        ['b', b],
      ]),
    );
    for (const e of [torn(30, 'a'), rec('a', 1), rec('b', 0), torn(20, 'a'), rec('b', 1), torn(10, 'b')])
      replay.add(e);
    assert.equal(a.started, true, 'seq 0 of a did not read back');
    assert.equal(b.started, false);
    const la = replay.lossesOf('a');
    assert.deepEqual(la.holes, []);
    assert.deepEqual(la.tail, { records: 1, bytes: 20, why: 'record checksum mismatch' });
    assert.equal(la.restoredStart, true);
    assert.equal(la.tornRecords, 2, 'the stretch that held seq 0 and the tail');
    assert.deepEqual(replay.lossesOf('b').tail, { records: 1, bytes: 10, why: 'record checksum mismatch' });
  });
});
