// `chaperone sessions play <id>`: replays a terminal channel (SSH shell/exec, kubectl exec) in the
// terminal with its recorded timing: faster or slower (--speed), long pauses shortened (--max-idle),
// or one output frame per key press (--step). Frames come from the asciicast exporter, so what
// plays is what `sessions export --format asciicast` writes.
import type { Command } from 'commander';
import { type RecordedEvent, readSession } from '../../recording/index.ts';
import { CliError } from '../errors.ts';
import { asciicastLines } from '../export/asciicast.ts';
import { storeFromFlag } from '../store.ts';
import { type Io, readPublicKeys } from './shared.ts';

export interface PlayOptions {
  /** Playback speed factor (2: twice as fast). */
  speed: number;
  /** Pauses longer than this many seconds (recorded time) are cut to it. */
  maxIdle: number | undefined;
  /** Wait for `next()` before each output frame instead of sleeping. */
  step: boolean;
  channel?: string;
}

export interface PlayDeps {
  sleep(ms: number): Promise<void>;
  /** Resolves when the viewer asks for the next frame (--step). */
  next(): Promise<void>;
}

/** Plays the asciicast frames of `events` to `out`. */
export async function play(
  events: AsyncIterable<RecordedEvent>,
  out: (text: string) => void,
  o: PlayOptions,
  deps: PlayDeps,
): Promise<void> {
  let last = 0;
  let header = true;
  for await (const line of asciicastLines(events, o.channel ? { channel: o.channel } : {})) {
    if (header) {
      header = false;
      continue;
    }
    const [t, type, data] = JSON.parse(line) as [number, string, string];
    if (type !== 'o' && type !== 'm') continue;
    let gap = t - last;
    last = t;
    if (o.maxIdle !== undefined) gap = Math.min(gap, o.maxIdle);
    if (o.step) await deps.next();
    else if (gap > 0) await deps.sleep((gap * 1000) / o.speed);
    out(type === 'o' ? data : `\r\n[${data}]\r\n`);
  }
}

function positive(name: string, v: string): number {
  const n = Number(v);
  if (!Number.isFinite(n) || n <= 0) throw new CliError(`${name} must be a positive number, got "${v}"`);
  return n;
}

/** Enter on stdin, one press per frame. */
function keyPresses(): () => Promise<void> {
  const waiters: (() => void)[] = [];
  let pressed = 0;
  process.stdin.on('data', (chunk: Buffer) => {
    for (const b of chunk) {
      if (b !== 0x0a && b !== 0x0d && b !== 0x20) continue;
      const w = waiters.shift();
      if (w) w();
      else pressed++;
    }
  });
  return () => {
    if (pressed > 0) {
      pressed--;
      return Promise.resolve();
    }
    return new Promise((resolve) => waiters.push(resolve));
  };
}

export function registerPlay(sessions: Command, io: Io): void {
  sessions
    .command('play <id>')
    .description('replay a terminal session (SSH shell/exec) in this terminal with its timing')
    .option('--speed <factor>', 'playback speed factor', '1')
    .option('--max-idle <seconds>', 'cut longer pauses to this many seconds')
    .option('--step', 'one output frame per Enter/Space instead of the recorded timing')
    .option('--channel <id>', 'the channel to play (default: the first shell or exec)')
    .option('--public-key <pem...>', 'also check signatures with these public keys')
    .action(
      async (
        id: string,
        o: { speed: string; maxIdle?: string; step?: boolean; channel?: string; publicKey?: string[] },
        cmd: Command,
      ) => {
        const store = storeFromFlag(cmd.optsWithGlobals().store);
        const keys = o.publicKey ? await readPublicKeys(o.publicKey) : undefined;
        const events = readSession(store, id, keys ? { publicKeys: keys } : {});
        const step = o.step === true;
        const next = step ? keyPresses() : () => Promise.resolve();
        try {
          await play(
            events,
            (t) => io.out(t),
            {
              speed: positive('--speed', o.speed),
              maxIdle: o.maxIdle !== undefined ? positive('--max-idle', o.maxIdle) : undefined,
              step,
              ...(o.channel ? { channel: o.channel } : {}),
            },
            { sleep: (ms) => new Promise((r) => setTimeout(r, ms)), next },
          );
        } finally {
          if (step) process.stdin.pause();
        }
      },
    );
}
