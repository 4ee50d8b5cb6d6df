// Many agents at once through one sidecar (PostgreSQL, recording to the sidecar test harness's
// local store): 200 sessions x 500 statements each, every statement executed upstream and recorded
// exactly once. The suite keeps a 20 x 50 version (sidecar/postgres/robustness.test.ts).
//   node bench/concurrent-sessions.bench.ts                   200 sessions x 500 statements
//   node bench/concurrent-sessions.bench.ts --short           50 sessions x 100 statements
//   --sessions=N --statements=M                               any other size

import { runConcurrentSessions } from '../sidecar/postgres/testing/concurrent-sessions.ts';
import { startHarness } from '../sidecar/postgres/testing/harness.ts';
import { startEnv } from '../test/env/index.ts';
import { psql } from '../test/env/postgres.ts';

const arg = (name: string) => process.argv.find((a) => a.startsWith(`--${name}=`))?.split('=')[1];
const short = process.argv.includes('--short');
const sessions = Number(arg('sessions') ?? (short ? 50 : 200));
const statements = Number(arg('statements') ?? (short ? 100 : 500));

const env = await startEnv(['postgres']);
try {
  const pgInfo = env.info.postgres!;
  const direct = async (sql: string) => (await psql(pgInfo, sql)).trim();
  const h = await startHarness(pgInfo);
  try {
    await direct('CREATE TABLE bench_conc (session int, n int)');
    const r = await runConcurrentSessions(h, {
      sessions,
      statements,
      table: 'bench_conc',
      count: () => direct('SELECT count(*) FROM bench_conc'),
    });
    const total = sessions * statements;
    process.stdout.write(
      `${JSON.stringify({
        bench: 'concurrent-sessions',
        sessions,
        statements,
        totalStatements: total,
        executeSeconds: Number(r.executeSeconds.toFixed(2)),
        statementsPerSecond: Math.round(total / r.executeSeconds),
        recordedAfterSeconds: Number(r.recordedSeconds.toFixed(2)),
        allRecordedExactlyOnce: true,
      })}\n`,
    );
  } finally {
    await h.close();
  }
} finally {
  await env.stop();
}
