// A SQL session's statements with their results, from its events: what the `jsonl` and `csv`
// exports write. Each pg.query waits for the pg.result / pg.error that answers it (in order, as
// the server answers); a statement the policy blocked (policy.blocked, never sent upstream) is a
// record of its own. Records come out in the order the statements were recorded, streaming: only
// statements still waiting for their answer are held.
import type { RecordedEvent } from '../../recording/index.ts';

/** The export's columns, in order: stable names (documented in docs/auditing.md). */
export const STATEMENT_FIELDS = [
  'seq',
  'time',
  'protocol',
  'sql',
  'params',
  'outcome',
  'command_tag',
  'rows',
  'duration_ms',
  'columns',
  'rows_sample',
  'masked_cells',
  'error',
  'sqlstate',
  'rule',
  'reason',
  'approved_by',
] as const;

export type StatementRecord = { [K in (typeof STATEMENT_FIELDS)[number]]: unknown } & {
  outcome: 'ok' | 'error' | 'blocked' | 'skipped' | 'unanswered';
};

const opt = (v: unknown) => (v === undefined ? null : v);

function record(e: RecordedEvent, fields: Partial<StatementRecord>): StatementRecord {
  const r = Object.fromEntries(STATEMENT_FIELDS.map((f) => [f, null])) as unknown as StatementRecord;
  return Object.assign(r, { seq: e.seq, time: new Date(e.wallMs).toISOString() }, fields);
}

export async function* statements(events: AsyncIterable<RecordedEvent>): AsyncGenerator<StatementRecord> {
  const queue: { r: StatementRecord; done: boolean }[] = [];
  let approvedBy: string | null = null;
  const take = () => {
    const a = approvedBy;
    approvedBy = null;
    return a;
  };
  for await (const e of events) {
    const p = e.payload;
    switch (e.kind) {
      case 'approval.granted':
        approvedBy = typeof p.approver === 'string' ? p.approver : null;
        break;
      case 'pg.query':
        queue.push({
          r: record(e, {
            protocol: opt(p.protocol),
            sql: opt(p.sql),
            params: opt(p.params),
            outcome: 'unanswered',
            approved_by: take(),
          }),
          done: false,
        });
        break;
      case 'policy.blocked':
        queue.push({
          r: record(e, {
            protocol: opt(p.protocol),
            sql: opt(p.sql ?? p.command),
            outcome: 'blocked',
            rule: opt(p.rule),
            reason: opt(p.reason),
            approved_by: take(),
          }),
          done: true,
        });
        break;
      case 'pg.result':
      case 'pg.error': {
        // The substitute error a blocked statement gets, and login errors, answer no pg.query.
        if (e.kind === 'pg.error' && (p.blocked === true || p.phase === 'login')) break;
        const waiting = queue.find((q) => !q.done);
        if (!waiting) break;
        waiting.done = true;
        Object.assign(
          waiting.r,
          e.kind === 'pg.result'
            ? {
                outcome: 'ok',
                command_tag: opt(p.commandTag),
                rows: opt(p.rows),
                duration_ms: opt(p.durationMs),
                columns: opt(p.columns),
                rows_sample: opt(p.rowsSample),
                masked_cells: opt(p.maskedCells),
              }
            : {
                outcome: p.skipped === true ? 'skipped' : 'error',
                duration_ms: opt(p.durationMs),
                error: opt(p.message),
                sqlstate: opt(p.sqlstate),
              },
        );
        break;
      }
    }
    while (queue[0]?.done) yield queue.shift()!.r;
  }
  for (const q of queue) yield q.r;
}
