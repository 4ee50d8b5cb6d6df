// A minimal wire-level client for tests: sends exactly the bytes a test wants (pipelined batches,
// malformed frames) and collects the backend messages that come back.
import { connect, type Socket } from 'node:net';
import { serialize } from 'pg-protocol/dist/serializer.js';
import { type BackendFrame, BackendFramer } from './backend.ts';
import { B, errorFields, startupMessage } from './protocol.ts';

export class RawClient {
  readonly socket: Socket;
  private readonly framer = new BackendFramer();
  private readonly frames: BackendFrame[] = [];
  private wake: (() => void) | undefined;
  closed = false;

  private constructor(socket: Socket) {
    this.socket = socket;
    socket.on('data', (chunk: Buffer) => {
      this.framer.push(chunk);
      for (let f = this.framer.next(); f; f = this.framer.next()) this.frames.push(f);
      this.wake?.();
    });
    socket.on('close', () => {
      this.closed = true;
      this.wake?.();
    });
    socket.on('error', () => undefined);
  }

  static open(port: number): Promise<RawClient> {
    return new Promise((resolve, reject) => {
      const socket = connect({ host: '127.0.0.1', port }, () => resolve(new RawClient(socket)));
      socket.once('error', reject);
    });
  }

  /** Opens a session and logs in with the token; resolves after the first ReadyForQuery. */
  static async login(port: number, token: string): Promise<RawClient> {
    const c = await RawClient.open(port);
    c.send(startupMessage({ user: 'agent', database: 'postgres' }));
    await c.until((f) => f.type === B.auth);
    c.send(serialize.password(token));
    await c.until((f) => f.type === B.readyForQuery);
    return c;
  }

  send(bytes: Buffer): void {
    this.socket.write(bytes);
  }

  /** Messages received up to and including the first one matching; rejects if the socket closes first. */
  async until(match: (f: BackendFrame) => boolean, timeoutMs = 10_000): Promise<BackendFrame[]> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const i = this.frames.findIndex(match);
      if (i >= 0) return this.frames.splice(0, i + 1);
      if (this.closed) throw new Error(`connection closed; got ${this.describe(this.frames)}`);
      if (Date.now() > deadline) throw new Error(`timed out; got ${this.describe(this.frames)}`);
      await new Promise<void>((resolve) => {
        this.wake = resolve;
        setTimeout(resolve, 100);
      });
    }
  }

  /** Everything until the connection closes. */
  async untilClosed(timeoutMs = 10_000): Promise<BackendFrame[]> {
    const deadline = Date.now() + timeoutMs;
    while (!this.closed) {
      if (Date.now() > deadline) throw new Error('connection did not close');
      await new Promise<void>((resolve) => {
        this.wake = resolve;
        setTimeout(resolve, 100);
      });
    }
    return this.frames.splice(0);
  }

  describe(frames: BackendFrame[]): string {
    return frames
      .map((f) =>
        f.type === B.error
          ? `E(${errorFields(f.raw).C} ${errorFields(f.raw).M})`
          : String.fromCharCode(f.type),
      )
      .join(' ');
  }

  close(): void {
    this.socket.destroy();
  }
}

export const typesOf = (frames: BackendFrame[]): string =>
  frames.map((f) => String.fromCharCode(f.type)).join('');
