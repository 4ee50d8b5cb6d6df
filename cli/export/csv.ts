// `--format csv`: the same records as jsonl, as RFC 4180 CSV with a header row. Lists and objects
// (params, columns, rows_sample) are JSON in their cell. A cell that a spreadsheet would run as a
// formula (starting with = + - @, tab or CR) gets a leading ' (OWASP's advice); jsonl keeps the
// text unchanged.
import type { RecordedEvent } from '../../recording/index.ts';
import type { Exporter, ExportSink } from './exporter.ts';
import { STATEMENT_FIELDS, statements } from './statements.ts';

export function csvCell(v: unknown): string {
  if (v === null || v === undefined) return '';
  let s =
    typeof v === 'string'
      ? v
      : typeof v === 'number' || typeof v === 'boolean'
        ? String(v)
        : JSON.stringify(v);
  if (typeof v === 'string' && /^[=+\-@\t\r]/.test(s)) s = `'${s}`;
  return /[",\r\n]/.test(s) ? `"${s.replaceAll('"', '""')}"` : s;
}

export const csv: Exporter = {
  format: 'csv',
  description: 'SQL statements with their results, CSV with a header row',
  async write(events: AsyncIterable<RecordedEvent>, sink: ExportSink) {
    await sink.write(`${STATEMENT_FIELDS.join(',')}\r\n`);
    for await (const s of statements(events))
      await sink.write(`${STATEMENT_FIELDS.map((f) => csvCell(s[f])).join(',')}\r\n`);
  },
};
