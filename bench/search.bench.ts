// Search benchmark: 10,000 generated sessions (signed index objects, written straight into a real
// MinIO), then a filtered `sessions search` before and after `index build`, cold (a new S3 client)
// and warm (the same client again). Fails when the filtered query over the Parquet index takes
// more than 2 s. Then the Parquet files are copied to a local folder (as `aws s3 sync` would) and
// the DuckDB query of docs/auditing.md must give the same sessions.
//   node bench/search.bench.ts                 10,000 sessions
//   BENCH_SESSIONS=2000 node bench/search.bench.ts

import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { DuckDBInstance } from '@duckdb/node-api';
import { buildSearchIndex } from '../cli/search/build.ts';
import { type SearchFilter, searchSessions } from '../cli/search/search.ts';
import { generateSessions } from '../cli/search/testing/generate.ts';
import { generateSigningKey, openStore, type S3Options } from '../recording/index.ts';
import { startEnv } from '../test/env/index.ts';

const SESSIONS = Number(process.env.BENCH_SESSIONS ?? 10_000);
const BUDGET_MS = 2_000;
const START = Date.UTC(2026, 10, 17);
const DAYS = 10;

const env = await startEnv(['minio']);
try {
  const minio = env.info.minio!;
  const s3: S3Options = {
    endpoint: minio.endpoint,
    region: minio.region,
    forcePathStyle: true,
    credentials: { accessKeyId: minio.accessKeyId, secretAccessKey: minio.secretAccessKey },
  };
  const url = `s3://${minio.bucket}/search-bench`;
  const key = generateSigningKey();
  const ms = (t: number) => Math.round(performance.now() - t);

  let t = performance.now();
  const all = await generateSessions(
    openStore(url, s3),
    { count: SESSIONS, startMs: START, days: DAYS },
    key.privateKeyPem,
    64,
  );
  const generated = ms(t);

  // The question of docs/auditing.md: one identity, three days, a blocked "drop table".
  const filter: SearchFilter = {
    subject: 'alice@example.com',
    since: Date.UTC(2026, 10, 20),
    until: Date.UTC(2026, 10, 22, 23, 59, 59),
    text: 'drop table',
    blocked: true,
  };
  const expected = all
    .filter(
      (s) =>
        s.subject === 'alice@example.com' &&
        s.startedAtMs >= filter.since! &&
        s.startedAtMs <= filter.until! &&
        (s.countsByKind['policy.blocked'] ?? 0) > 0 &&
        s.commands.sample.some((c) => c.toLowerCase().includes('drop table')),
    )
    .map((s) => s.sessionId)
    .sort();

  async function query(store: ReturnType<typeof openStore>, f: SearchFilter) {
    const t0 = performance.now();
    const r = await searchSessions(store, f);
    return {
      ms: ms(t0),
      found: r.sessions.length,
      fromIndexObjects: r.fromIndexObjects,
      ids: r.sessions.map((s) => s.session_id),
    };
  }
  const check = (ids: string[]) => {
    if (JSON.stringify([...ids].sort()) !== JSON.stringify(expected))
      throw new Error(`search answered ${ids.length} sessions, expected ${expected.length}`);
  };

  const fallback = await query(openStore(url, s3), filter);
  check(fallback.ids);

  t = performance.now();
  const report = await buildSearchIndex(openStore(url, s3), { concurrency: 32 });
  const built = ms(t);
  t = performance.now();
  const rebuild = await buildSearchIndex(openStore(url, s3), { concurrency: 32 });
  const rebuilt = ms(t);

  const coldStore = openStore(url, s3);
  const cold = await query(coldStore, filter);
  const warm = await query(coldStore, filter);
  check(cold.ids);
  check(warm.ids);
  const allCold = await query(openStore(url, s3), {});
  const allWarm = await query(coldStore, {});

  // DuckDB over a local copy of the Parquet files, with the documented query.
  const copy = await mkdtemp(join(tmpdir(), 'chaperone-search-bench-'));
  let duck: { ms: number; found: number };
  try {
    const store = openStore(url, s3);
    for await (const k of store.list('parquet/sessions/')) {
      await mkdir(dirname(join(copy, k)), { recursive: true });
      await writeFile(join(copy, k), (await store.get(k))!);
    }
    const doc = await readFile(new URL('../docs/auditing.md', import.meta.url), 'utf8');
    const sql = /### The same question in DuckDB[\s\S]*?```sql\n([\s\S]*?)```/.exec(doc)![1]!;
    const db = await DuckDBInstance.create(':memory:');
    const conn = await db.connect();
    const t0 = performance.now();
    const result = await conn.runAndReadAll(sql.replace('/srv/chaperone-store', copy));
    const ids = result.getRowObjectsJson().map((r) => String(r.session_id));
    duck = { ms: ms(t0), found: ids.length };
    conn.closeSync();
    check(ids);
  } finally {
    await rm(copy, { recursive: true, force: true });
  }

  const rows = [
    ['sessions', String(SESSIONS)],
    ['partitions (days x namespaces)', String(report.partitions)],
    ['generate index objects', `${generated} ms`],
    ['filtered search, no Parquet yet (index objects only)', `${fallback.ms} ms (${fallback.found} found)`],
    ['index build (first run)', `${built} ms (${report.partitionsWritten} partitions written)`],
    ['index build (again, nothing new)', `${rebuilt} ms (${rebuild.partitionsWritten} written)`],
    [
      'filtered search, cold (new S3 client)',
      `${cold.ms} ms (${cold.found} found, ${cold.fromIndexObjects} from index objects)`,
    ],
    ['filtered search, warm', `${warm.ms} ms`],
    ['all sessions, cold', `${allCold.ms} ms (${allCold.found} found)`],
    ['all sessions, warm', `${allWarm.ms} ms`],
    ['DuckDB, documented query over a local copy', `${duck.ms} ms (${duck.found} found, same sessions)`],
  ];
  const w = Math.max(...rows.map((r) => r[0]!.length));
  for (const [k, v] of rows) process.stdout.write(`${k!.padEnd(w)}  ${v}\n`);
  if (cold.ms > BUDGET_MS || warm.ms > BUDGET_MS) {
    process.stderr.write(`filtered search over ${BUDGET_MS} ms\n`);
    process.exitCode = 1;
  }
} finally {
  await env.stop();
}
