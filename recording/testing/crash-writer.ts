// Child process for the crash test: records sessions as fast as it can and reports on stdout which
// events were acknowledged (durable in the spool), until the parent kills it with SIGKILL. It never
// has more than `batch` appends of a session unacknowledged (the bound it declares to the recorder).
import { openRecorder } from '../index.ts';
import { sampleHeader } from './fixtures.ts';

interface Config {
  spoolDir: string;
  store: string;
  s3?: Parameters<typeof openRecorder>[0]['s3'];
  signingKey: string;
  sessions: number;
  /** Appends per session in flight at once (default 20). */
  batch?: number;
  /** Declared to the recorder as maxUnsettledAppends (default: the recorder's default). */
  maxUnsettledAppends?: number;
  seal?: { maxBytes: number; maxMs: number };
  /** End session 0 cleanly after this many events (it prints `ended <id>`). */
  endFirstAfter?: number;
}

const config = JSON.parse(process.env.CRASH_WRITER_CONFIG ?? '{}') as Config;
const rec = await openRecorder({
  spoolDir: config.spoolDir,
  store: config.store,
  ...(config.s3 ? { s3: config.s3 } : {}),
  signingKey: config.signingKey,
  seal: config.seal ?? { maxBytes: 16 * 1024, maxMs: 200 },
  ...(config.maxUnsettledAppends ? { maxUnsettledAppends: config.maxUnsettledAppends } : {}),
});
const batchSize = config.batch ?? 20;
const sessions = await Promise.all(
  Array.from({ length: config.sessions }, (_, i) =>
    rec.startSession(sampleHeader({ identity: { pod: `crash-${i}`, namespace: 'crash' } })),
  ),
);
for (const s of sessions) process.stdout.write(`started ${s.sessionId}\n`);
await Promise.all(
  sessions.map(async (s, index) => {
    for (let n = 0; ; ) {
      if (index === 0 && config.endFirstAfter !== undefined && n >= config.endFirstAfter) {
        await s.end({ reason: 'done' });
        process.stdout.write(`ended ${s.sessionId} ${n}\n`);
        return;
      }
      const batch = [];
      for (let i = 0; i < batchSize; i++, n++) {
        batch.push(
          s.append({
            kind: 'pg.query',
            direction: 'client',
            payload: { n, sql: `UPDATE accounts SET balance = balance - 1 WHERE id = ${n}` },
          }),
        );
      }
      await Promise.all(batch);
      // Everything up to n-1 is acknowledged: the parent may rely on it.
      process.stdout.write(`acked ${s.sessionId} ${n}\n`);
      await new Promise((r) => setImmediate(r));
    }
  }),
);
