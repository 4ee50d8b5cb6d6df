// asciicast v2 (https://docs.asciinema.org/manual/asciicast/v2/): a terminal channel as asciinema
// and asciinema-player play it. Output is "o", what the agent typed "i", size changes "r", and the
// exit status a marker "m". Times are seconds from the channel's open event on the writer's
// monotonic clock, so wall-clock steps do not distort the replay.
import { TextDecoder } from 'node:util';
import { type RecordedEvent, TerminalKinds } from '../../recording/index.ts';
import { CliError } from '../errors.ts';
import type { Exporter, ExportOptions, ExportSink } from './exporter.ts';

const DEFAULT_SIZE = { cols: 80, rows: 24 };
const PLAYABLE_MODES = new Set(['shell', 'exec', 'attach']);

interface Channel {
  id: string;
  startNs: bigint;
  decoders: Map<string, TextDecoder>;
}

function seconds(e: RecordedEvent, c: Channel): number {
  const ns = BigInt(e.monoNs) - c.startNs;
  return Math.max(0, Number(ns / 1000n) / 1e6);
}

function text(c: Channel, stream: string, base64: string): string {
  let d = c.decoders.get(stream);
  if (!d) {
    d = new TextDecoder('utf-8');
    c.decoders.set(stream, d);
  }
  // stream: true keeps a UTF-8 sequence split across two chunks whole.
  return d.decode(Buffer.from(base64, 'base64'), { stream: true });
}

/** The asciicast lines of one terminal channel; the header comes from its open event. */
export async function* asciicastLines(
  events: AsyncIterable<RecordedEvent>,
  options: ExportOptions = {},
): AsyncGenerator<string> {
  let channel: Channel | undefined;
  for await (const e of events) {
    const p = e.payload as Record<string, unknown>;
    if (!channel) {
      if (e.kind !== TerminalKinds.open) continue;
      if (options.channel ? p.channel !== options.channel : !PLAYABLE_MODES.has(String(p.mode))) continue;
      channel = { id: String(p.channel), startNs: BigInt(e.monoNs), decoders: new Map() };
      const pty = (p.pty as { cols: number; rows: number; term?: string } | undefined) ?? DEFAULT_SIZE;
      const header: Record<string, unknown> = {
        version: 2,
        width: pty.cols || DEFAULT_SIZE.cols,
        height: pty.rows || DEFAULT_SIZE.rows,
        timestamp: Math.floor(e.wallMs / 1000),
        ...(p.command ? { command: String(p.command) } : {}),
        env: { TERM: (pty as { term?: string }).term ?? 'xterm', SHELL: '' },
      };
      yield JSON.stringify(header);
      continue;
    }
    if (p.channel !== channel.id) continue;
    const t = seconds(e, channel);
    switch (e.kind) {
      case TerminalKinds.output:
        yield JSON.stringify([t, 'o', text(channel, String(p.stream), String(p.data))]);
        break;
      case TerminalKinds.input:
        yield JSON.stringify([t, 'i', text(channel, 'stdin', String(p.data))]);
        break;
      case TerminalKinds.resize:
        yield JSON.stringify([t, 'r', `${p.cols}x${p.rows}`]);
        break;
      case TerminalKinds.exit:
        yield JSON.stringify([t, 'm', p.signal ? `exit signal ${p.signal}` : `exit ${p.code ?? '?'}`]);
        return;
    }
  }
  if (!channel) {
    throw new CliError(
      options.channel
        ? `no terminal channel ${options.channel} in this session`
        : 'no terminal channel in this session',
    );
  }
}

export const asciicast: Exporter = {
  format: 'asciicast',
  description: 'asciicast v2 of a terminal channel (SSH shell/exec, kubectl exec), for asciinema',
  async write(events: AsyncIterable<RecordedEvent>, sink: ExportSink, options: ExportOptions) {
    for await (const line of asciicastLines(events, options)) await sink.write(`${line}\n`);
  },
};
