// Synthetic sessions for search tests and the search benchmark: signed index objects written
// straight into a store (no segments), as the recorder would write them, with a mix of
// namespaces, days, identities, statements and policy decisions that a filter can tell apart.
import { createHash } from 'node:crypto';
import {
  loadSigningKey,
  newSessionId,
  type SegmentStore,
  type SessionIndex,
} from '../../../recording/index.ts';
import { buildIndex, emptyTotals, encodeIndex, noteCommand } from '../../../recording/index-record.ts';
import { indexKey, partitionDate } from '../../../recording/layout.ts';
import { mapLimit } from '../partitions.ts';

export const SUBJECTS = ['alice@example.com', 'bob@example.com', 'system:serviceaccount:agents:report-bot'];
export const NAMESPACES = ['agents', 'billing', 'payments', 'ops', 'data'];
const STATEMENTS = [
  'SELECT id, total FROM orders WHERE customer_id = $1',
  'UPDATE accounts SET balance = balance - $1 WHERE id = $2',
  'DROP TABLE audit_log',
  'DELETE FROM sessions WHERE expires_at < now()',
  'kubectl get pods -n payments',
  'cat /etc/passwd',
];

export interface GenerateOptions {
  count: number;
  /** First day (UTC midnight, ms); sessions spread over `days` days from it. */
  startMs: number;
  days: number;
  /** Every n-th session stays open (default: none). */
  openEvery?: number;
}

/** The i-th synthetic session's index record (deterministic but for its id and signature). */
export function syntheticIndex(
  i: number,
  o: GenerateOptions,
  key: ReturnType<typeof loadSigningKey>,
): SessionIndex {
  const startedAtMs = o.startMs + Math.floor(((i * 7919) % (o.days * 86_400)) * 1000) + (i % 1000);
  const namespace = NAMESPACES[i % NAMESPACES.length]!;
  const subject = SUBJECTS[(i % 11) % SUBJECTS.length]!;
  const totals = emptyTotals();
  const statements = 1 + (i % 4);
  for (let s = 0; s < statements; s++) noteCommand(totals, STATEMENTS[(i + s * 5) % STATEMENTS.length]!);
  // Destructive statements are blocked in every other session (the policy changed half way).
  const blocked = i % 2 === 0 && totals.commands.sample.some((c) => /^(DROP|DELETE)/.test(c)) ? 1 : 0;
  const approved = i % 9 === 0 ? 1 : 0;
  totals.events = 2 + statements * 2 + blocked + approved;
  totals.countsByKind = {
    'session.start': 1,
    'pg.query': statements,
    'pg.result': statements,
    ...(blocked ? { 'policy.blocked': blocked } : {}),
    ...(approved ? { 'approval.granted': approved } : {}),
    'session.end': 1,
  };
  totals.segments = 1;
  totals.lastSeq = totals.events - 1;
  totals.lastSegmentSha256 = createHash('sha256').update(String(i)).digest('hex');
  const open = o.openEvery !== undefined && i % o.openEvery === 0;
  const sessionId = newSessionId(startedAtMs);
  return buildIndex(
    {
      header: {
        sessionId,
        startedAt: new Date(startedAtMs).toISOString(),
        startedAtMs,
        protocol: i % 5 === 4 ? 'ssh' : 'postgres',
        target: { name: i % 2 ? 'orders-db' : 'ledger-db', host: '10.0.0.7', port: 5432 },
        identity: {
          subject,
          issuer: 'https://issuer.example.com',
          serviceAccount: `sa-${i % 4}`,
          pod: `agent-${i % 50}-7f9c`,
          namespace,
          node: 'node-1',
        },
        policy: { name: 'db-agents', namespace, generation: 1 },
        sidecarVersion: '0.1.0-synthetic',
        labels: {},
        recorder: { format: 'chaperone.recording/v1', keyId: key.keyId, keyFingerprint: key.fingerprint },
      },
      date: partitionDate(startedAtMs),
      namespace,
      status: open ? 'open' : 'ended',
      ...(open ? {} : { endedAtMs: startedAtMs + 60_000, endReason: 'client closed' }),
      totals,
    },
    key,
    startedAtMs + 61_000,
  );
}

export async function putIndex(store: SegmentStore, index: SessionIndex): Promise<void> {
  const body = encodeIndex(index);
  await store.put(
    indexKey({ sessionId: index.sessionId, date: index.date, namespace: index.namespace }),
    body,
    {
      sha256: createHash('sha256').update(body).digest(),
      contentType: 'application/x-ndjson',
    },
  );
}

/** Writes `count` synthetic index objects; returns them. */
export async function generateSessions(
  store: SegmentStore,
  o: GenerateOptions,
  privateKeyPem: string,
  concurrency = 32,
): Promise<SessionIndex[]> {
  const key = loadSigningKey(privateKeyPem);
  const all = Array.from({ length: o.count }, (_, i) => syntheticIndex(i, o, key));
  await mapLimit(all, concurrency, (s) => putIndex(store, s));
  return all;
}
