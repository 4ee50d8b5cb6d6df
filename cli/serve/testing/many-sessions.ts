// Many signed index objects written straight into a store, as the recorder would leave them, for
// measuring the viewer's list with 10,000 sessions without recording each one.
import { createHash } from 'node:crypto';
import type { SegmentStore } from '../../../recording/index.ts';
import { buildIndex, emptyTotals, encodeIndex } from '../../../recording/index-record.ts';
import { loadSigningKey } from '../../../recording/keys.ts';
import { indexKey, newSessionId, partitionDate } from '../../../recording/layout.ts';

export const NAMESPACES = 10;
export const SUBJECTS = 500;
const DAY = 86_400_000;

/** Writes `count` index objects over 5 days and 10 namespaces; subject `agent-<i % 500>`. */
export async function writeManyIndexes(
  store: SegmentStore,
  count: number,
  signingKeyPem: string,
  startMs = Date.UTC(2026, 10, 20),
  concurrency = 32,
): Promise<void> {
  const key = loadSigningKey(signingKeyPem);
  let next = 0;
  const one = async (i: number) => {
    const startedAtMs = startMs + Math.floor((i / count) * 5 * DAY);
    const namespace = `team-${i % NAMESPACES}`;
    const sessionId = newSessionId(startedAtMs);
    const totals = emptyTotals();
    totals.events = 10 + (i % 50);
    if (i % 97 === 0) totals.countsByKind['policy.blocked'] = 1;
    const index = buildIndex(
      {
        header: {
          sessionId,
          protocol: 'postgres',
          target: { name: `db-${i % 7}`, host: '10.0.0.7', port: 5432 },
          identity: {
            subject: `agent-${i % SUBJECTS}`,
            namespace,
            pod: `pod-${i}`,
            serviceAccount: `sa-${i % 50}`,
          },
          sidecarVersion: '0.1.0-bench',
          startedAt: new Date(startedAtMs).toISOString(),
          startedAtMs,
          recorder: { format: 'chaperone.recording/v1', keyId: key.keyId, keyFingerprint: key.fingerprint },
        },
        date: partitionDate(startedAtMs),
        namespace,
        status: 'ended',
        endedAtMs: startedAtMs + 60_000,
        endReason: 'done',
        totals,
      },
      key,
    );
    const body = encodeIndex(index);
    await store.put(indexKey({ sessionId, date: index.date, namespace }), body, {
      sha256: createHash('sha256').update(body).digest(),
      contentType: 'application/x-ndjson',
    });
  };
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < count) await one(next++);
    }),
  );
}
