// What a session page shows: one window of its events, the terminal channels a player can replay,
// and the verification report, read together (the report and the events come from two passes over
// the same segments, both checked).
import type { RecordedEvent, SessionIndex } from '../../recording/index.ts';
import { SessionNotFoundError, VerificationError } from '../../recording/index.ts';
import type { TerminalChannel } from './pages/session.ts';
import type { CheckedReport, SessionSource } from './source.ts';

const PLAYABLE = new Set(['shell', 'exec', 'attach']);

export interface SessionWindow {
  index: SessionIndex | undefined;
  report: CheckedReport;
  /** Events offset..offset+limit-1 (by position in the session). */
  events: RecordedEvent[];
  /** Events read in all (up to a failing segment). */
  seen: number;
  channels: TerminalChannel[];
  /** Reading stopped at a segment that failed a check. */
  readError?: string;
}

export async function readSessionWindow(
  source: SessionSource,
  id: string,
  offset: number,
  limit: number,
): Promise<SessionWindow> {
  const index = await source.index(id);
  const events: RecordedEvent[] = [];
  const channels: TerminalChannel[] = [];
  let seen = 0;
  let readError: string | undefined;
  const read = async () => {
    try {
      for await (const e of source.events(id)) {
        if (seen >= offset && seen < offset + limit) events.push(e);
        seen++;
        const p = e.payload as Record<string, unknown>;
        if (e.kind === 'terminal.open' && PLAYABLE.has(String(p.mode))) {
          channels.push({
            channel: String(p.channel),
            mode: String(p.mode),
            ...(typeof p.command === 'string' ? { command: p.command } : {}),
          });
        }
      }
    } catch (err) {
      if (err instanceof SessionNotFoundError) return;
      if (!(err instanceof VerificationError)) throw err;
      readError = err.message;
    }
  };
  const [report] = await Promise.all([source.verify(id, index), read()]);
  return { index, report, events, seen, channels, ...(readError ? { readError } : {}) };
}
