// The recording's cost per statement, as the PostgreSQL gateway pays it: 16 sessions each append a
// pg.query and a pg.result event per statement (select-only's shape) at a steady rate, never
// awaiting an append, with the sidecar's commit window, sealing, signing and a file store. Process
// CPU per statement (user + system, all threads) is robust to a loaded machine; a 1 ms timer paces
// the appends, so the run's idle loop is included (a fraction of a µs per statement).
//   node bench/append.bench.ts [--statements 100000] [--sessions 16] [--rate 8000] [--window 2]
// --window: the journal's group-commit window in ms (default: the sidecar's).
// --rate 0: unpaced, 256 statements per group commit (the per-event work, with group costs shared).
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { generateSigningKey, openRecorder } from '../recording/index.ts';
import { sampleHeader } from '../recording/testing/fixtures.ts';
import { SIDECAR_COMMIT_WINDOW_MS } from '../sidecar/server/runtime.ts';

const { values } = parseArgs({
  options: {
    statements: { type: 'string', default: '100000' },
    sessions: { type: 'string', default: '16' },
    rate: { type: 'string', default: '8000' },
    window: { type: 'string', default: String(SIDECAR_COMMIT_WINDOW_MS) },
  },
});
const statements = Number(values.statements);
const sessions = Number(values.sessions);
const rate = Number(values.rate);

const dir = await mkdtemp(join(tmpdir(), 'chaperone-append-bench-'));
try {
  const key = generateSigningKey();
  const recorder = await openRecorder({
    spoolDir: join(dir, 'spool'),
    store: `file://${join(dir, 'store')}`,
    signingKey: key.privateKeyPem,
    commitWindowMs: Number(values.window),
  });
  const recs = await Promise.all(
    Array.from({ length: sessions }, () => recorder.startSession(sampleHeader())),
  );
  const sql = 'SELECT abalance FROM pgbench_accounts WHERE aid = 48213;';
  const statement = async (rec: (typeof recs)[number], i: number) => {
    const query = rec.append({
      kind: 'pg.query',
      direction: 'client',
      payload: { sql, protocol: 'simple' },
      summary: sql,
    });
    const result = rec.append({
      kind: 'pg.result',
      direction: 'server',
      payload: {
        commandTag: 'SELECT 1',
        rows: 1,
        durationMs: 0.123,
        maskedCells: 0,
        columns: ['abalance'],
        rowsSample: [[String(i % 10000)]],
      },
    });
    return Promise.all([query, result]);
  };
  // The gateway's pace: statements arrive at `rate` per second, spread over the sessions; nothing
  // waits for an append, as in the gateway (whose backpressure only bounds what is unsettled).
  const run = async (count: number) => {
    if (rate === 0) return runUnpaced(count);
    // Counted, not kept: an array of every statement's promise would make the run measure its own
    // garbage (old-generation collections of a growing array) instead of the recorder.
    let unsettled = 0;
    let failure: unknown;
    const settle = () => {
      unsettled--;
    };
    const fail = (err: unknown) => {
      failure = err;
      unsettled--;
    };
    const start = performance.now();
    let done = 0;
    while (done < count || unsettled > 0) {
      const due = Math.min(count, Math.floor(((performance.now() - start) * rate) / 1000) + 1);
      for (; done < due; done++) {
        unsettled++;
        statement(recs[done % sessions]!, done).then(settle, fail);
      }
      await new Promise((r) => setTimeout(r, 1));
    }
    if (failure) throw failure;
  };
  // --rate 0: as fast as the CPU allows, 256 statements per group commit: the per-event work alone.
  async function runUnpaced(count: number) {
    for (let i = 0; i < count; i += 256) {
      const batch: Promise<unknown>[] = [];
      for (let j = i; j < Math.min(count, i + 256); j++) batch.push(statement(recs[j % sessions]!, j));
      await Promise.all(batch);
    }
  }
  await run(Math.min(20_000, statements)); // warm-up
  const cpu0 = process.cpuUsage();
  const main0 = process.threadCpuUsage();
  const t0 = performance.now();
  await run(statements);
  const wall = performance.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  const main = process.threadCpuUsage(main0);
  await Promise.all(recs.map((r) => r.end({ reason: 'bench' })));
  await recorder.close();
  process.stdout.write(
    `${statements} statements (2 events each), ${sessions} sessions: CPU ${((cpu.user + cpu.system) / statements).toFixed(2)} µs per statement (user ${(cpu.user / statements).toFixed(2)}, system ${(cpu.system / statements).toFixed(2)}; main thread ${((main.user + main.system) / statements).toFixed(2)}); wall ${((wall * 1000) / statements).toFixed(2)} µs\n`,
  );
} finally {
  await rm(dir, { recursive: true, force: true });
}
