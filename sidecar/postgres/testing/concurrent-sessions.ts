// Many agents at once through one sidecar: each session runs its statements (half extended
// protocol, half simple queries), then every executed statement must be recorded exactly once.
// The suite runs a small version for correctness; bench/concurrent-sessions.bench.ts runs the load.
import assert from 'node:assert/strict';
import pg from 'pg';
import { until } from '../../../test/testing/until.ts';
import { type Harness, kinds } from './harness.ts';

export interface ConcurrentRun {
  sessions: number;
  statements: number;
  /** Time until every client had run all its statements and disconnected. */
  executeSeconds: number;
  /** Time from then until every session was sealed and readable from the store. */
  recordedSeconds: number;
}

/**
 * Runs `sessions` clients of `statements` INSERTs each into `table` (created by the caller as
 * `(session int, n int)`), checks the rows upstream with `count` and then that the recording holds
 * one session per client with one pg.query and one pg.result per statement.
 */
export async function runConcurrentSessions(
  h: Harness,
  options: { sessions: number; statements: number; table: string; count: () => Promise<string> },
): Promise<ConcurrentRun> {
  const { sessions, statements, table } = options;
  const prefix = `${table}-`;
  const run = async (s: number) => {
    const client = new pg.Client({ ...h.clientConfig(), application_name: `${prefix}${s}` });
    await client.connect();
    try {
      for (let n = 0; n < statements; n++) {
        if (s % 2 === 0) await client.query(`INSERT INTO ${table} VALUES ($1, $2)`, [s, n]);
        else await client.query(`INSERT INTO ${table} VALUES (${s}, ${n})`);
      }
    } finally {
      await client.end();
    }
  };
  const started = performance.now();
  await Promise.all(Array.from({ length: sessions }, (_, s) => run(s)));
  const executed = performance.now();
  assert.equal(await options.count(), String(sessions * statements));

  // The recording: one ended session per client, `statements` pg.query + pg.result each.
  const perSession = await until(
    `${sessions} recorded sessions`,
    async () => {
      const found = new Map<string, number>();
      for (const id of await h.sessionIds()) {
        // a session still uploading its last segments is read again on the next look
        const events = await h.events(id).catch(() => []);
        const app = kinds(events, 'pg.startup')[0]?.payload.application_name;
        if (
          typeof app === 'string' &&
          app.startsWith(prefix) &&
          events.some((e) => e.kind === 'session.end')
        ) {
          const queries = kinds(events, 'pg.query');
          assert.equal(kinds(events, 'pg.result').length, queries.length, `${app}: a result per statement`);
          found.set(app, queries.length);
        }
      }
      return found.size === sessions ? found : undefined;
    },
    { timeoutMs: 120_000, intervalMs: 250 },
  );
  for (const [app, count] of perSession) assert.equal(count, statements, app);
  return {
    sessions,
    statements,
    executeSeconds: (executed - started) / 1000,
    recordedSeconds: (performance.now() - executed) / 1000,
  };
}
