// A tiny spool and a store that is down: failClosed makes appends wait and refuses new sessions;
// failOpen lets traffic go on and records exactly what it could not keep as a signed gap event.
// "An append waits" is decided from the recorder's state, not from a timer: with the store down
// and time-based sealing off, only a seal in flight can free room, so once the writer has no seal
// in flight and the session is still blocked, the append waits for the store.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { startMinio } from '../test/env/minio.ts';
import { nextTurn, until } from '../test/testing/until.ts';
import {
  generateSigningKey,
  openRecorder,
  openStore,
  type RecordedEvent,
  readSession,
  type SessionRecording,
  SpoolFullError,
  verifySession,
} from './index.ts';
import { s3OptionsFor, s3UrlFor, sampleHeader, sqlEvents, tempDir } from './testing/fixtures.ts';

const LIMIT = 48 * 1024;

/** Resolves once the session's writer has no seal in flight (nor one queued by the recorder). */
async function sealsSettled(session: SessionRecording): Promise<void> {
  const writer = session as unknown as { settled(): Promise<void> };
  for (;;) {
    await nextTurn(); // a full spool queues a forced seal with setImmediate
    const chain = writer.settled();
    await chain;
    await nextTurn();
    if (writer.settled() === chain) return;
  }
}

describe('spool limit with the store down', async () => {
  const dir = await tempDir('spool-policy');
  const minio = await startMinio(join(dir, 'minio'));
  after(() => minio.stop());
  const s3 = { ...s3OptionsFor(minio.info), requestTimeoutMs: 5000 };
  const key = generateSigningKey();

  // sealMaxMs: failClosed turns time-based sealing off, so only sizes and the full spool seal.
  const open = (name: string, failMode: 'failClosed' | 'failOpen', sealMaxMs = 100) => {
    const url = s3UrlFor(minio.info, name);
    return openRecorder({
      spoolDir: join(dir, `spool-${name}`),
      store: url,
      s3,
      signingKey: key.privateKeyPem,
      seal: { maxBytes: 8 * 1024, maxMs: sealMaxMs },
      spoolLimitBytes: LIMIT,
      failMode,
      upload: { minBackoffMs: 50, maxBackoffMs: 300 },
    }).then((rec) => ({ rec, url }));
  };

  test('failClosed: appends wait, new sessions are refused, nothing is lost', async () => {
    await minio.server.start();
    const { rec, url } = await open('closed', 'failClosed', 3_600_000);
    const s = await rec.startSession(sampleHeader());
    await minio.server.stop();
    let n = 0;
    let pending: Promise<void> | undefined;
    // Append until an append has to wait for room and stays waiting (sealing compresses what is
    // open, which frees some room the first times).
    for (; n < 100_000 && !pending; n++) {
      const [q] = sqlEvents(n);
      const p = s.append({ ...q, payload: { ...q.payload, n } });
      if (rec.status().blockedSessions === 0) {
        await p;
        continue;
      }
      // Blocked: sealing what is open may still free room (compression); once no seal is in
      // flight, a session still blocked can only be freed by the store.
      await sealsSettled(s);
      if (rec.status().blockedSessions > 0) pending = p;
      else await p;
    }
    assert.ok(pending, 'an append waits once the spool is full');
    let settledEarly = false;
    void pending.then(() => {
      settledEarly = true;
    });
    const status = rec.status();
    assert.ok(status.spooledBytes >= LIMIT);
    assert.equal(status.storeHealthy, false);
    await assert.rejects(rec.startSession(sampleHeader()), (err: unknown) => {
      assert.ok(err instanceof SpoolFullError);
      assert.match(
        (err as Error).message,
        /spool full .* store unreachable .*new sessions are refused \(failClosed\)/,
      );
      return true;
    });
    // More appends queue behind, in order.
    const resolved: number[] = [];
    const queued = [
      pending,
      ...Array.from({ length: 5 }, (_, i) =>
        s.append({ kind: 'pg.query', direction: 'client', payload: { n: n + i } }),
      ),
    ];
    queued.forEach((p, i) => void p.then(() => resolved.push(i)));
    await sealsSettled(s);
    assert.equal(settledEarly, false, 'the waiting append is not acknowledged');
    assert.deepEqual(resolved, [], 'nothing is acknowledged while the store is down and the spool full');
    assert.equal(rec.status().blockedSessions, 1);
    await minio.server.start();
    await Promise.all(queued);
    assert.deepEqual(resolved, [0, 1, 2, 3, 4, 5]);
    await s.end({ reason: 'done' });
    await rec.close({ deadlineMs: 60_000 });

    const events: RecordedEvent[] = [];
    for await (const e of readSession(openStore(url, s3), s.sessionId)) events.push(e);
    const ns = events.filter((e) => e.kind === 'pg.query').map((e) => e.payload.n);
    assert.deepEqual(
      ns,
      Array.from({ length: n + 5 }, (_, i) => i),
    );
    assert.equal(events.filter((e) => e.kind === 'recording.gap').length, 0);
    const report = await verifySession(openStore(url, s3), s.sessionId, key.publicKeyPem);
    assert.equal(report.ok, true, JSON.stringify(report.failure));
  });

  test('failOpen: traffic goes on; a signed gap event says which seqs, how many bytes, why, when', async () => {
    await minio.server.start();
    const { rec, url } = await open('open', 'failOpen');
    const s = await rec.startSession(sampleHeader());
    await minio.server.stop();
    let n = 0;
    let sawFull = false;
    for (; n < 3000; n++) {
      const [q] = sqlEvents(n);
      await s.append({ ...q, payload: { ...q.payload, n } });
      if (rec.status().spooledBytes >= LIMIT) sawFull = true;
    }
    assert.ok(sawFull, 'the spool filled up');
    assert.equal(rec.status().blockedSessions, 0, 'failOpen never waits');
    const s2 = await rec.startSession(sampleHeader({ sessionId: 'new-during-outage' }));
    await minio.server.start();
    await until(
      'the spool to drain',
      () => rec.status().pendingSegments === 0 && rec.status().spooledBytes < LIMIT,
      { timeoutMs: 60_000 },
    );
    for (let i = 0; i < 10; i++)
      await s.append({ kind: 'pg.query', direction: 'client', payload: { n: n + i } });
    await s2.end({ reason: 'done' });
    await s.end({ reason: 'done' });
    await rec.close({ deadlineMs: 60_000 });

    const events: RecordedEvent[] = [];
    for await (const e of readSession(openStore(url, s3), s.sessionId)) events.push(e);
    const gaps = events.filter((e) => e.kind === 'recording.gap');
    assert.ok(gaps.length >= 1, 'the loss is recorded');
    const kept = new Set(events.map((e) => e.seq));
    let lost = 0;
    for (const g of gaps) {
      const p = g.payload as Record<string, number | string>;
      assert.equal(p.cause, 'spool-full');
      assert.match(
        String(p.reason),
        /spool full \(\d+ of 49152 bytes\); store unreachable since .*ECONNREFUSED/,
      );
      const from = p.fromSeq as number;
      const to = p.toSeq as number;
      assert.equal(p.events, to - from + 1);
      assert.ok((p.bytes as number) > (p.events as number) * 100, 'bytes of the lost event lines');
      assert.ok((p.fromWallMs as number) <= (p.toWallMs as number));
      for (let q = from; q <= to; q++) assert.ok(!kept.has(q), `seq ${q} is listed as lost`);
      lost += p.events as number;
    }
    // Every seq is either kept or accounted for by a gap event.
    const maxSeq = events.at(-1)!.seq;
    assert.equal(kept.size + lost, maxSeq + 1);
    const last10 = events
      .filter((e) => e.kind === 'pg.query')
      .slice(-10)
      .map((e) => e.payload.n);
    assert.deepEqual(
      last10,
      Array.from({ length: 10 }, (_, i) => n + i),
      'recording resumes after the gap',
    );
    const report = await verifySession(openStore(url, s3), s.sessionId, key.publicKeyPem);
    assert.equal(report.ok, true, JSON.stringify(report.failure));
    assert.equal(report.lostEvents, lost);
    assert.ok(lost > 0);
    const report2 = await verifySession(openStore(url, s3), 'new-during-outage', key.publicKeyPem);
    assert.equal(report2.ok, true, JSON.stringify(report2.failure));
  });
});
