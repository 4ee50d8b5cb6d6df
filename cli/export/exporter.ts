// One export format: turns a session's events (read in order, hashes checked) into a standard
// format, streaming: an exporter never holds the whole session.
import type { RecordedEvent } from '../../recording/index.ts';

export interface ExportSink {
  /** Resolves when the text may be followed by more (backpressure). */
  write(text: string): Promise<void>;
}

export interface ExportOptions {
  /** Terminal exports: the channel to export (default: the first terminal channel). */
  channel?: string;
}

export interface Exporter {
  format: string;
  description: string;
  write(events: AsyncIterable<RecordedEvent>, sink: ExportSink, options: ExportOptions): Promise<void>;
}
