import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { DuckDBInstance } from '@duckdb/node-api';
import { generateSigningKey, loadSigningKey, openStore, type SessionIndex } from '../../recording/index.ts';
import { tempDir } from '../../recording/testing/fixtures.ts';
import { run } from '../program.ts';
import { runCaptured } from '../testing/run.ts';
import { schemaTable } from './columns.ts';
import { parquetKey } from './partitions.ts';
import { generateSessions, putIndex, syntheticIndex } from './testing/generate.ts';

const DAY = 86_400_000;
const START = Date.UTC(2026, 10, 19); // 19 November 2026, five days of sessions
const OPTS = { count: 150, startMs: START, days: 5, openEvery: 10 };

const cli = runCaptured;

const jsonLines = (s: string) =>
  s
    .trim()
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Record<string, unknown>);

/** The documented question, answered by brute force over what was generated. */
function expected(all: SessionIndex[]): string[] {
  const since = Date.UTC(2026, 10, 20);
  const until = Date.UTC(2026, 10, 22, 23, 59, 59);
  return all
    .filter(
      (s) =>
        (s.subject === 'alice@example.com' || s.serviceAccount === 'alice@example.com') &&
        s.startedAtMs >= since &&
        s.startedAtMs <= until &&
        (s.countsByKind['policy.blocked'] ?? 0) > 0 &&
        s.commands.sample.some((c) => c.toLowerCase().includes('drop table')),
    )
    .sort((a, b) => a.startedAtMs - b.startedAtMs || (a.sessionId < b.sessionId ? -1 : 1))
    .map((s) => s.sessionId);
}

const SEARCH = [
  'sessions',
  'search',
  '--subject',
  'alice@example.com',
  '--since',
  '2026-11-20T00:00:00Z',
  '--until',
  '2026-11-22T23:59:59Z',
  '--text',
  'drop table',
  '--blocked',
  '--json',
];

async function documentedDuckDbQuery(storeDir: string): Promise<string> {
  const doc = await readFile(new URL('../../docs/auditing.md', import.meta.url), 'utf8');
  const sql = /### The same question in DuckDB[\s\S]*?```sql\n([\s\S]*?)```/.exec(doc)?.[1];
  assert.ok(sql, 'docs/auditing.md has the DuckDB query');
  return sql.replace('/srv/chaperone-store', storeDir);
}

test('sessions search answers from index objects, then from Parquet after index build, like DuckDB', async () => {
  const dir = await tempDir('search');
  const storeDir = join(dir, 'store');
  const url = `file://${storeDir}`;
  const store = openStore(url);
  const key = generateSigningKey();
  const all = await generateSessions(store, OPTS, key.privateKeyPem);
  const want = expected(all);
  assert.ok(want.length >= 2 && want.length < all.length / 10, `a selective question (${want.length})`);

  // Before any build: every answer comes from the index objects.
  const before = await cli(['--store', url, ...SEARCH]);
  assert.equal(before.code, 0, before.err);
  assert.deepEqual(
    jsonLines(before.out).map((r) => r.session_id),
    want,
  );

  const build = await cli(['--store', url, 'index', 'build', '--json']);
  assert.equal(build.code, 0, build.err);
  const report = JSON.parse(build.out);
  assert.equal(report.sessions, all.length);
  assert.equal(report.added, all.length);
  assert.equal(report.partitions, 25); // 5 days x 5 namespaces
  assert.equal(report.partitionsWritten, 25);

  // Idempotent: nothing new, nothing written.
  const again = JSON.parse((await cli(['--store', url, 'index', 'build', '--json'])).out);
  assert.equal(again.partitionsWritten, 0);
  assert.equal(again.added + again.updated, 0);

  const after = await cli(['--store', url, ...SEARCH]);
  const rows = jsonLines(after.out);
  assert.deepEqual(
    rows.map((r) => r.session_id),
    want,
  );
  const first = all.find((s) => s.sessionId === want[0])!;
  assert.equal(rows[0]!.namespace, first.namespace);
  assert.equal(rows[0]!.date, first.date);
  assert.equal(rows[0]!.started_at, first.startedAt);
  assert.deepEqual(rows[0]!.commands, first.commands.sample);

  // The documented DuckDB query over the same files gives the same sessions in the same order.
  const db = await DuckDBInstance.create(':memory:');
  const conn = await db.connect();
  try {
    const result = await conn.runAndReadAll(await documentedDuckDbQuery(storeDir));
    assert.deepEqual(
      result.getRowObjectsJson().map((r) => r.session_id),
      want,
    );
  } finally {
    conn.closeSync();
  }
});

test('index build is incremental: new sessions and sessions that ended since are picked up', async () => {
  const dir = await tempDir('search-incremental');
  const url = `file://${join(dir, 'store')}`;
  const store = openStore(url);
  const key = generateSigningKey();
  const all = await generateSessions(store, { ...OPTS, count: 40 }, key.privateKeyPem);
  const open = all.filter((s) => s.status === 'open');
  assert.ok(open.length > 0);
  assert.equal((await cli(['--store', url, 'index', 'build'])).code, 0);

  // An open session in the Parquet file is still answered from its index object, so it ends in
  // search results as soon as its index object says so, before the next build.
  const ended: SessionIndex = {
    ...open[0]!,
    status: 'ended',
    endedAt: new Date(open[0]!.startedAtMs + DAY / 24).toISOString(),
    endedAtMs: open[0]!.startedAtMs + DAY / 24,
    endReason: 'client closed',
    updatedAt: new Date(open[0]!.startedAtMs + DAY / 24).toISOString(),
  };
  await putIndex(store, ended);
  const newer = syntheticIndex(1000, { ...OPTS, count: 1 }, loadSigningKey(key.privateKeyPem));
  await putIndex(store, newer);

  const ns = ended.namespace;
  const listed = jsonLines(
    (await cli(['--store', url, 'sessions', 'search', '--namespace', ns, '--status', 'ended', '--json'])).out,
  );
  assert.ok(listed.some((r) => r.session_id === ended.sessionId));

  const report = JSON.parse((await cli(['--store', url, 'index', 'build', '--json'])).out);
  assert.equal(report.added, 1);
  assert.equal(report.updated, 1);
  assert.equal(report.sessions, 41);
  const found = jsonLines((await cli(['--store', url, 'sessions', 'search', '--json'])).out);
  assert.equal(found.length, 41);
  assert.equal(found.find((r) => r.session_id === ended.sessionId)?.status, 'ended');
  assert.ok(found.some((r) => r.session_id === newer.sessionId));

  // A damaged Parquet file costs speed, not answers, and the next build replaces it.
  const damaged = parquetKey({ date: ended.date, namespace: ended.namespace });
  const junk = Buffer.from('PAR1 not really parquet');
  await store.put(damaged, junk, { sha256: createHash('sha256').update(junk).digest(), contentType: 'x' });
  const again = jsonLines((await cli(['--store', url, 'sessions', 'search', '--json'])).out);
  assert.deepEqual(
    again.map((r) => r.session_id),
    found.map((r) => r.session_id),
  );
  const repaired = JSON.parse((await cli(['--store', url, 'index', 'build', '--json'])).out);
  assert.equal(repaired.partitionsWritten, 1);
});

test('the search table fits the terminal width and keeps the session id whole', async () => {
  const dir = await tempDir('search-table');
  const url = `file://${join(dir, 'store')}`;
  await generateSessions(openStore(url), { ...OPTS, count: 5 }, generateSigningKey().privateKeyPem);
  let out = '';
  const code = await run(['--store', url, 'sessions', 'search'], {
    out: (t) => {
      out += t;
    },
    err: (t) => assert.fail(t),
    columns: 120,
  });
  assert.equal(code, 0);
  const lines = out.trimEnd().split('\n');
  assert.equal(lines.length, 6);
  for (const l of lines) assert.ok(l.length <= 120, `${l.length}: ${l}`);
  assert.match(lines[1]!, /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[0-9a-f]{4}-[0-9a-f]{12} /);
});

test('docs/auditing.md lists the Parquet columns the writer writes', async () => {
  const doc = await readFile(new URL('../../docs/auditing.md', import.meta.url), 'utf8');
  // Cells compared trimmed: the formatter pads markdown tables.
  const cells = (text: string) =>
    text
      .split('\n')
      .filter((l) => l.startsWith('| `'))
      .map((l) => l.split('|').map((c) => c.trim()));
  const section = /### Parquet schema[\s\S]*?\n### /.exec(doc)?.[0] ?? '';
  assert.deepEqual(cells(section), cells(schemaTable()));
});
