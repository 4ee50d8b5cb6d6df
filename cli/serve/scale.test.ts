// The viewer's list with many sessions in MinIO: the first listing is read once, then every filter
// and page answers from memory, and filters mean what listSessions means. 2,000 sessions by
// default (writing them costs the suite the most); CHAPERONE_VIEWER_SCALE_SESSIONS=10000 for the
// figure in docs/auditing.md (Web viewer).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { ListedSession } from '../../recording/index.ts';
import { generateSigningKey, listSessions, openStore } from '../../recording/index.ts';
import { s3OptionsFor, s3UrlFor } from '../../recording/testing/fixtures.ts';
import { testEnv } from '../../test/env/index.ts';
import { buildSearchIndex } from '../search/build.ts';
import { searchSessions } from '../search/search.ts';
import { buildViewer } from './app.ts';
import { Gate } from './auth.ts';
import { filterSessions, IndexCache, SessionSource, type ViewerFilter } from './source.ts';
import { writeManyIndexes } from './testing/many-sessions.ts';

const COUNT = Number(process.env.CHAPERONE_VIEWER_SCALE_SESSIONS ?? 2_000);
const env = await testEnv(['minio']);

test(`list and search ${COUNT} sessions in MinIO`, async () => {
  const url = s3UrlFor(env.minio, 'viewer-scale');
  const store = openStore(url, s3OptionsFor(env.minio));
  const key = generateSigningKey();
  let t = performance.now();
  await writeManyIndexes(store, COUNT, key.privateKeyPem);
  const writeMs = performance.now() - t;

  const source = new SessionSource(store, [key.publicKeyPem]);
  const token = 'scale-test-viewer-token-0123456789';
  const app = await buildViewer({ source, gate: new Gate({ mode: 'token', token }) });
  const get = async (path: string) => {
    const start = performance.now();
    const r = await app.inject({ url: path, headers: { authorization: `Bearer ${token}` } });
    assert.equal(r.statusCode, 200, r.body);
    return { ms: performance.now() - start, body: r.body };
  };
  const cold = await get('/?subject=agent-42');
  const warm = await get('/?subject=agent-42');
  const deepPage = await get(`/?offset=${COUNT - 50}`);
  const combined = await get('/?namespace=team-2&subject=agent-1*&since=2026-11-21&until=2026-11-23');
  await app.close();
  const perSubject = COUNT / 500;
  assert.match(
    cold.body,
    new RegExp(`${perSubject} matching sessions, showing 1–${Math.min(50, perSubject)}`),
  );
  assert.match(deepPage.body, new RegExp(`${COUNT} matching sessions, showing ${COUNT - 49}–${COUNT}`));
  process.stderr.write(
    `[viewer-scale] ${COUNT} index objects written in ${writeMs.toFixed(0)} ms; first page cold ${cold.ms.toFixed(0)} ms, ` +
      `warm ${warm.ms.toFixed(1)} ms, page ${COUNT / 50} ${deepPage.ms.toFixed(1)} ms, four filters ${combined.ms.toFixed(1)} ms\n`,
  );
  for (const ms of [warm.ms, deepPage.ms, combined.ms]) assert.ok(ms < 500, `a warm page in ${ms} ms`);

  // The in-memory filters keep exactly what listSessions keeps.
  t = performance.now();
  const cache = new IndexCache(store);
  const all = await cache.refresh();
  assert.equal(all.length, COUNT);
  assert.equal(cache.lastReads, COUNT);
  // A refresh reads only what is new (every session here has ended).
  await writeManyIndexes(store, 3, key.privateKeyPem, Date.UTC(2026, 10, 26));
  const refreshStart = performance.now();
  assert.equal((await cache.refresh()).length, COUNT + 3);
  assert.equal(cache.lastReads, 3);
  process.stderr.write(
    `[viewer-scale] refresh with 3 new sessions: ${(performance.now() - refreshStart).toFixed(0)} ms\n`,
  );
  // A listSessions scan with a namespace reads a tenth of the objects, one after another.
  const filters: ViewerFilter[] = [
    {
      namespace: 'team-1',
      subject: 'agent-1*',
      pod: 'pod-*1',
      since: Date.UTC(2026, 10, 21),
      until: Date.UTC(2026, 10, 23, 12),
    },
  ];
  for (const f of filters) {
    const expected: string[] = [];
    for await (const s of listSessions(store, f)) expected.push(s.sessionId);
    const got = filterSessions(all, f).map((s) => s.sessionId);
    assert.deepEqual(got.sort(), expected.sort(), JSON.stringify(f));
  }
  assert.ok(filterSessions(all, filters[0]!).length > 0);
  process.stderr.write(
    `[viewer-scale] equivalence with listSessions checked in ${(performance.now() - t).toFixed(0)} ms\n`,
  );

  // With a Parquet search index (`chaperone index build`), the listing is seeded from its
  // partitions and reads only the index objects written since: the same sessions, with the same
  // fields but those the index does not keep.
  await buildSearchIndex(store);
  await writeManyIndexes(store, 2, key.privateKeyPem, Date.UTC(2026, 10, 27));
  const withParquet = new SessionSource(store, [key.publicKeyPem]);
  const app2 = await buildViewer({ source: withParquet, gate: new Gate({ mode: 'token', token }) });
  const start = performance.now();
  const r = await app2.inject({ url: '/?subject=agent-42', headers: { authorization: `Bearer ${token}` } });
  const coldParquet = performance.now() - start;
  await app2.close();
  assert.equal(r.statusCode, 200);
  assert.match(r.body, new RegExp(`${perSubject} matching sessions, showing 1–${Math.min(50, perSubject)}`));
  process.stderr.write(
    `[viewer-scale] with the Parquet index: first page cold ${coldParquet.toFixed(0)} ms\n`,
  );

  const seeded = new IndexCache(store);
  const fromParquet = await seeded.refresh();
  assert.equal(fromParquet.length, COUNT + 5);
  assert.equal(seeded.fromParquet, COUNT + 3);
  assert.equal(seeded.lastReads, 2, 'only the sessions written after index build are read');
  const fromObjects = await new IndexCache(store, 32, false).refresh();
  const lossy = ({
    rawBytes: _r,
    lastSeq: _l,
    lastSegmentSha256: _s,
    keyFingerprint: _k,
    signature: _g,
    signatureVerified: _v,
    ...rest
  }: ListedSession) => ({
    ...rest,
    ...(rest.policy ? { policy: { name: rest.policy.name, namespace: rest.policy.namespace } } : {}),
  });
  const byId = new Map(fromObjects.map((s) => [s.sessionId, lossy(s)]));
  for (const s of fromParquet) assert.deepEqual(lossy(s), byId.get(s.sessionId), s.sessionId);
  const more: ViewerFilter[] = [
    ...filters,
    { subject: 'sa-7' },
    { pod: 'pod-1*', since: Date.UTC(2026, 10, 22) },
    { namespace: 'team-3', target: 'db-*' },
    { until: Date.UTC(2026, 10, 20, 12) },
    { since: Date.UTC(2026, 10, 27) },
  ];
  for (const f of more) {
    const got = filterSessions(fromParquet, f).map((s) => s.sessionId);
    const searched = (await searchSessions(store, f)).sessions.map((s) => s.session_id);
    const listed: string[] = [];
    for await (const s of listSessions(store, f)) listed.push(s.sessionId);
    assert.ok(got.length > 0, JSON.stringify(f));
    assert.deepEqual([...got].sort(), [...searched].sort(), `search ${JSON.stringify(f)}`);
    assert.deepEqual([...got].sort(), [...listed].sort(), `listSessions ${JSON.stringify(f)}`);
  }
});
