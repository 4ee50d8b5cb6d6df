// Relays a legacy scp (scp -O) exec through its decoder (scp.ts): the source's bytes go to the
// sink as they come, except each file record, which waits for pathPattern (and an approval, if a
// rule asks for one). A refused file is answered for the sink with an scp error, so the source
// skips it and goes on; every file moved or refused is recorded as a terminal.file event.
import type { ClientChannel, ServerChannel } from 'ssh2';
import type { CommandDecider, Verdict } from '../session/index.ts';
import type { SshGuard } from './guard.ts';
import type { ScpDecoder, ScpSegment } from './scp.ts';

/** What the relay needs from its channel. */
export interface ScpRelayHost {
  id: string;
  ended(): boolean;
  agent(): ServerChannel;
  up(): ClientChannel;
  guard(): SshGuard;
  decider: CommandDecider;
  rec(kind: string, direction: 'client' | 'server' | 'internal', payload: Record<string, unknown>): void;
  /** A message on the agent's stderr. */
  notify(message: string): void;
  close(): void;
}

export class ScpRelay {
  private readonly decoder: ScpDecoder;
  private readonly host: ScpRelayHost;
  private queue: ScpSegment[] = [];
  private waiting = false;

  constructor(decoder: ScpDecoder, host: ScpRelayHost) {
    this.decoder = decoder;
    this.host = host;
  }

  /** Which side is the source: the agent (upload, `scp -t`) or the host (download, `scp -f`). */
  get direction(): 'upload' | 'download' {
    return this.decoder.direction;
  }

  /** Bytes of the source, on their way to the sink. */
  source(data: Buffer): void {
    const h = this.host;
    this.queue.push(...this.decoder.feed(data));
    if (this.decoder.error) {
      h.rec('ssh.error', 'client', { channel: h.id, message: `scp: ${this.decoder.error}` });
      h.notify(`chaperone: ${this.decoder.error}`);
      h.close();
      return;
    }
    this.pump();
  }

  /** The channel ended: a transfer cut off is recorded as such. */
  end(): void {
    for (const op of this.decoder.end())
      this.host.rec('terminal.file', 'internal', { channel: this.host.id, ...op });
  }

  private pump(): void {
    const h = this.host;
    const decoder = this.decoder;
    const upload = decoder.direction === 'upload';
    const source = upload ? h.agent() : h.up();
    const toSink = (b: Buffer) => {
      const ok = upload ? h.up().write(b) : h.agent().write(b);
      if (!ok) source.pause();
    };
    while (!this.waiting && this.queue.length > 0 && !h.ended()) {
      const seg = this.queue.shift()!;
      if (seg.kind === 'bytes') {
        toSink(seg.data);
        continue;
      }
      const guard = h.guard();
      if (guard.pathRules === 0) {
        toSink(seg.line);
        continue;
      }
      const verdict = h.decider.decide(guard.paths(seg.paths), {
        text: `scp ${decoder.direction} ${seg.path}`,
        noun: 'scp transfer',
        named: {},
        detail: { channel: h.id, paths: seg.paths },
      });
      const apply = (v: Verdict) => {
        if (v === undefined) {
          toSink(seg.line);
          return;
        }
        // The sink's answer to the record, from the sidecar: the source skips the file and goes on.
        decoder.skip();
        const answer = Buffer.from(`\x01${v.replace(/\n/g, ' ')}\n`);
        if (upload) h.agent().write(answer);
        else {
          h.up().write(answer);
          h.notify(v);
        }
        h.rec('terminal.file', 'internal', {
          channel: h.id,
          op: decoder.direction,
          path: seg.path,
          bytes: 0,
          status: 'blocked',
        });
      };
      if (typeof verdict !== 'object') {
        apply(verdict);
        continue;
      }
      this.waiting = true;
      source.pause();
      verdict.then((v) => {
        this.waiting = false;
        if (h.ended()) return;
        apply(v);
        source.resume();
        this.pump();
      });
    }
    for (const op of decoder.drain()) h.rec('terminal.file', 'internal', { channel: h.id, ...op });
  }
}
