// `--format jsonl`: a SQL session's statements with their results, one JSON object per line, the
// fields of STATEMENT_FIELDS in that order (null when a statement has no such value).
import type { RecordedEvent } from '../../recording/index.ts';
import type { Exporter, ExportSink } from './exporter.ts';
import { statements } from './statements.ts';

export const jsonl: Exporter = {
  format: 'jsonl',
  description: 'SQL statements with their results, one JSON object per line',
  async write(events: AsyncIterable<RecordedEvent>, sink: ExportSink) {
    for await (const s of statements(events)) await sink.write(`${JSON.stringify(s)}\n`);
  },
};
