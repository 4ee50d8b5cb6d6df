import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { zstdDecompressSync } from 'node:zlib';
import { HeadObjectCommand, ListObjectsV2Command } from '@aws-sdk/client-s3';
import { testEnv } from '../test/env/index.ts';
import {
  type EventInput,
  generateSigningKey,
  listSessions,
  type RecordedEvent,
  verifySession,
} from './index.ts';
import { collectEvents, sampleHeader, sqlEvents } from './testing/fixtures.ts';
import { fileTestStore, minioTestStore, rawBucket } from './testing/test-store.ts';

const collect = collectEvents;

function assertSameEvents(got: RecordedEvent[], sent: EventInput[]): void {
  const user = got.filter((e) => !e.kind.startsWith('session.') && !e.kind.startsWith('recording.'));
  assert.equal(user.length, sent.length);
  user.forEach((e, i) => {
    const s = sent[i]!;
    assert.equal(e.kind, s.kind, `event ${i}`);
    assert.equal(e.direction, s.direction);
    assert.deepEqual(e.payload, s.payload);
    if (s.at) {
      assert.equal(e.wallMs, s.at.wallMs);
      assert.equal(e.monoNs, String(s.at.monoNs));
    }
  });
  for (const [i, e] of got.entries()) assert.equal(e.seq, i, 'seqs are 0..n-1 without holes');
}

describe('round trip through the file:// store', () => {
  test('every event reads back in order, the header and end frame them, verify passes', async () => {
    const fixture = await fileTestStore('rt-file');
    const rec = await fixture.recorder({ seal: { maxBytes: 8 * 1024 } });
    const session = await rec.startSession(sampleHeader());
    const sent: EventInput[] = [
      {
        kind: 'pg.startup',
        direction: 'client',
        payload: { user: 'reporter', database: 'orders', ünïcødé: '✓ 日本' },
      },
      {
        kind: 'pg.query',
        direction: 'client',
        payload: { sql: 'SELECT 1' },
        at: { wallMs: 1_795_000_000_123, monoNs: 123456789012345678n },
      },
      {
        kind: 'policy.blocked',
        direction: 'internal',
        payload: { rule: 'no-ddl', reason: 'DROP is not allowed', command: 'DROP TABLE x' },
        summary: 'DROP TABLE x',
      },
      { kind: 'policy.masked', direction: 'internal', payload: { rule: 'pii', fields: ['email'], count: 3 } },
      {
        kind: 'approval.requested',
        direction: 'internal',
        payload: { approval: 'sa-123', reason: 'DELETE over 100 rows' },
        summary: 'DELETE FROM orders',
      },
      {
        kind: 'approval.granted',
        direction: 'internal',
        payload: { approval: 'sa-123', approver: 'alice@example.com' },
      },
      {
        kind: 'approval.denied',
        direction: 'internal',
        payload: { approval: 'sa-124', approver: 'bob@example.com', reason: 'no' },
      },
    ];
    for (let i = 0; i < 300; i++) sent.push(...sqlEvents(i));
    // Appends in flight together share fsyncs; order is the call order.
    await Promise.all(sent.map((e) => session.append(e)));
    await session.end({ reason: 'client terminated', counts: { statements: 300 } });
    await rec.close();

    const store = fixture.open();
    const events = await collect(store, session.sessionId);
    assertSameEvents(events, sent);
    const first = events[0]!;
    assert.equal(first.kind, 'session.start');
    assert.equal((first.payload as { identity: { pod: string } }).identity.pod, 'report-bot-7f9c');
    assert.equal((first.payload as { policy: { generation: number } }).policy.generation, 3);
    const last = events.at(-1)!;
    assert.equal(last.kind, 'session.end');
    assert.equal(last.payload.reason, 'client terminated');

    const report = await verifySession(store, session.sessionId, fixture.key.publicKeyPem);
    assert.equal(report.ok, true, JSON.stringify(report.failure));
    assert.equal(report.complete, true);
    assert.ok(report.segments > 3, `several segments sealed (${report.segments})`);
    assert.equal(report.events, events.length);
    assert.deepEqual(report.warnings, []);

    const listed = [];
    for await (const s of listSessions(store, { namespace: 'agents' })) listed.push(s);
    assert.equal(listed.length, 1);
    assert.equal(listed[0]!.status, 'ended');
    assert.equal(listed[0]!.events, events.length);
    assert.equal(listed[0]!.countsByKind['pg.query'], 301);
    // A refused or held command is searchable by its text, but was not run.
    assert.equal(listed[0]!.commands.total, 300);
    assert.ok(listed[0]!.commands.sample.length > 0 && listed[0]!.commands.sample.length <= 50);
    assert.ok(listed[0]!.commands.sample.includes('DROP TABLE x'), listed[0]!.commands.sample.join(' | '));
    assert.ok(listed[0]!.commands.sample.includes('DELETE FROM orders'));
  });

  test('bad input is refused with a clear error and loses nothing', async () => {
    const fixture = await fileTestStore('rt-bad');
    const rec = await fixture.recorder();
    await assert.rejects(
      rec.startSession({ ...sampleHeader(), protocol: 'ftp' as 'ssh' }),
      /invalid session header: protocol/,
    );
    await assert.rejects(
      rec.startSession(sampleHeader({ sessionId: '../etc' })),
      /invalid session header: sessionId/,
    );
    const s = await rec.startSession(sampleHeader({ sessionId: 'fixed-id-1' }));
    await assert.rejects(rec.startSession(sampleHeader({ sessionId: 'fixed-id-1' })), /already/);
    await assert.rejects(s.append({ kind: 'session.end', direction: 'internal', payload: {} }), /reserved/);
    await assert.rejects(
      s.append({ kind: 'x', direction: 'sideways' as 'client', payload: {} }),
      /direction/,
    );
    await assert.rejects(
      s.append({ kind: 'policy.blocked', direction: 'internal', payload: { rule: 'r' } }),
      /payload of policy\.blocked is invalid: reason/,
    );
    await assert.rejects(
      s.append({ kind: 'approval.granted', direction: 'internal', payload: { approval: 'a' } }),
      /approver/,
    );
    await assert.rejects(s.append({ kind: 'x', direction: 'client', payload: { n: 1n } }), /not JSON/);
    await s.append({ kind: 'ok', direction: 'client', payload: { n: 1 } });
    await s.end({ reason: 'done' });
    await assert.rejects(s.append({ kind: 'late', direction: 'client', payload: {} }), /has ended/);
    await rec.close();
    await assert.rejects(rec.startSession(sampleHeader()), /closed/);
    const events = await collect(fixture.open(), 'fixed-id-1');
    assert.deepEqual(
      events.map((e) => e.kind),
      ['session.start', 'ok', 'session.end'],
    );
  });

  test('a second recorder cannot take a spool in use', async () => {
    const fixture = await fileTestStore('rt-lock');
    const rec = await fixture.recorder();
    // Same pid counts as a stale owner (container restart), so fake another live owner: pid 1.
    await rec.close();
    const { writeFile } = await import('node:fs/promises');
    await writeFile(join(fixture.spoolDir, 'LOCK'), '1');
    await assert.rejects(fixture.recorder(), /in use by process 1/);
  });
});

describe('round trip through MinIO', async () => {
  const env = await testEnv(['minio']);

  test('concurrent sessions read back event for event; objects carry SHA-256 checksums', async () => {
    const fixture = await minioTestStore(env.minio, 'roundtrip');
    const rec = await fixture.recorder({ keyId: 'test-key-2026', seal: { maxBytes: 16 * 1024, maxMs: 200 } });
    const targets = ['orders-db', 'billing-db', 'orders-db'];
    const sessions = await Promise.all(
      targets.map((name, i) =>
        rec.startSession(
          sampleHeader({
            target: { name, host: '10.0.0.7', port: 5432 },
            identity: {
              subject: `agent-${i}`,
              pod: `pod-${i}`,
              namespace: i === 2 ? 'other' : 'agents',
              serviceAccount: `sa-${i}`,
            },
          }),
        ),
      ),
    );
    const sent: EventInput[][] = sessions.map(() => []);
    await Promise.all(
      sessions.map(async (s, si) => {
        for (let i = 0; i < 400; i++) {
          const [q, r] = sqlEvents(i + si);
          sent[si]!.push(q, r);
          await Promise.all([s.append(q), s.append(r)]);
        }
      }),
    );
    await Promise.all(sessions.map((s) => s.end({ reason: 'done' })));
    await rec.close({ deadlineMs: 60_000 });
    assert.equal(rec.status().pendingSegments, 0);

    const store = fixture.open();
    for (const [i, s] of sessions.entries()) {
      assertSameEvents(await collect(store, s.sessionId), sent[i]!);
      const report = await verifySession(store, s.sessionId, { 'test-key-2026': fixture.key.publicKeyPem });
      assert.equal(report.ok, true, JSON.stringify(report.failure));
      assert.deepEqual(report.keyIds, ['test-key-2026']);
    }

    // Plain S3 tools: the layout is Hive-partitioned, segments are zstd JSON Lines with checksums.
    const bucket = rawBucket(env.minio);
    const { prefix } = fixture;
    const listed = await bucket.client.send(
      new ListObjectsV2Command({ Bucket: bucket.name, Prefix: `${prefix}/index/` }),
    );
    const indexKeys = (listed.Contents ?? []).map((o) => o.Key!.slice(prefix.length + 1)).sort();
    assert.equal(indexKeys.length, 3);
    for (const k of indexKeys)
      assert.match(k, /^index\/date=\d{4}-\d{2}-\d{2}\/namespace=(agents|other)\/[0-9a-f-]{36}\.json$/);
    const segKey = `${(await fixture.locate(sessions[0]!.sessionId, 'agents')).folder}seg-000001.zst`;
    const head = await bucket.client.send(
      new HeadObjectCommand({ Bucket: bucket.name, Key: segKey, ChecksumMode: 'ENABLED' }),
    );
    const body = await bucket.get(segKey);
    assert.equal(head.ChecksumSHA256, createHash('sha256').update(body).digest('base64'));
    const lines = zstdDecompressSync(body).toString('utf8').trimEnd().split('\n');
    assert.equal(JSON.parse(lines[0]!).kind, 'session.start');

    const ids = async (filter: Parameters<typeof listSessions>[1]) => {
      const out: string[] = [];
      for await (const s of listSessions(store, filter)) out.push(s.sessionId);
      return out.sort();
    };
    const [a, b, c] = sessions.map((s) => s.sessionId) as [string, string, string];
    assert.deepEqual(await ids({}), [a, b, c].sort());
    assert.deepEqual(await ids({ namespace: 'agents' }), [a, b].sort());
    assert.deepEqual(await ids({ pod: 'pod-1' }), [b]);
    assert.deepEqual(await ids({ pod: 'pod-*' }), [a, b, c].sort());
    assert.deepEqual(await ids({ subject: 'agent-2' }), [c]);
    assert.deepEqual(await ids({ subject: 'sa-0' }), [a], 'subject also matches the service account');
    assert.deepEqual(await ids({ target: 'orders-db' }), [a, c].sort());
    assert.deepEqual(await ids({ since: Date.now() + 3_600_000 }), []);
    assert.deepEqual(await ids({ until: Date.now() - 3_600_000 }), []);
    assert.deepEqual(
      await ids({ since: new Date(Date.now() - 3_600_000).toISOString(), until: new Date() }),
      [a, b, c].sort(),
    );
    assert.deepEqual(
      await ids({ publicKeys: generateSigningKey().publicKeyPem }),
      [],
      'indexes signed by another key are left out',
    );
  });
});
