// Store outages: MinIO stopped mid-session and restarted; the spool holds and nothing is lost.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { startMinio } from '../test/env/minio.ts';
import { until } from '../test/testing/until.ts';
import {
  generateSigningKey,
  openRecorder,
  openStore,
  type RecordedEvent,
  readSession,
  verifySession,
} from './index.ts';
import { s3OptionsFor, s3UrlFor, sampleHeader, sqlEvents, tempDir } from './testing/fixtures.ts';

const waitFor = (what: string, cond: () => boolean) => until(what, cond, { timeoutMs: 60_000 });

describe('store outage', async () => {
  const dir = await tempDir('outage');
  const minio = await startMinio(join(dir, 'minio'));
  after(() => minio.stop());
  const s3 = s3OptionsFor(minio.info);

  test('MinIO stopped mid-session, then restarted: zero events lost, upload completes', async () => {
    const key = generateSigningKey();
    const url = s3UrlFor(minio.info, 'outage');
    const rec = await openRecorder({
      spoolDir: join(dir, 'spool'),
      store: url,
      s3: { ...s3, requestTimeoutMs: 5000 },
      signingKey: key.privateKeyPem,
      seal: { maxBytes: 8 * 1024, maxMs: 100 },
      upload: { minBackoffMs: 50, maxBackoffMs: 400 },
    });
    const s = await rec.startSession(sampleHeader());
    let sent = 0;
    const appendSome = async (n: number) => {
      for (let i = 0; i < n; i++) {
        for (const e of sqlEvents(sent)) await s.append(e);
        sent++;
      }
    };
    await appendSome(100);
    await minio.server.stop();
    await appendSome(100);
    await waitFor('the recorder to notice the outage', () => !rec.status().storeHealthy);
    // Traffic goes on while the store is down; everything lands in the spool.
    await appendSome(300);
    const during = rec.status();
    assert.equal(during.storeHealthy, false);
    assert.ok(during.pendingSegments > 0, 'sealed segments wait in the spool');
    assert.ok(
      during.lastStoreError && /unreachable|ECONNREFUSED/.test(during.lastStoreError),
      during.lastStoreError,
    );
    await minio.server.start();
    await appendSome(100);
    await s.end({ reason: 'done' });
    await rec.close({ deadlineMs: 60_000 });
    const final = rec.status();
    assert.equal(final.pendingSegments, 0);
    assert.equal(final.storeHealthy, true);

    const store = openStore(url, s3);
    const events: RecordedEvent[] = [];
    for await (const e of readSession(store, s.sessionId)) events.push(e);
    assert.equal(events.filter((e) => e.kind === 'pg.query').length, sent);
    assert.equal(events.filter((e) => e.kind === 'pg.result').length, sent);
    assert.equal(events.filter((e) => e.kind === 'recording.gap').length, 0);
    for (const [i, e] of events.entries()) assert.equal(e.seq, i);
    const report = await verifySession(store, s.sessionId, key.publicKeyPem);
    assert.equal(report.ok, true, JSON.stringify(report.failure));
    assert.equal(report.complete, true);
    assert.equal(report.lostEvents, 0);
  });
});
