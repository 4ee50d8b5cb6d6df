// Reads of a plain TCP socket into one reused buffer (net's `onread` option) instead of a fresh
// allocation and a trip through the Readable stream per read. Until a sink is set, each read is
// copied and emitted as an ordinary 'data' event, so login code keeps using socket events.
// A sink sees a view that is only valid during the call: it must copy whatever it keeps, and call
// pin() when memory of the view is still referenced afterwards (a write the kernel did not take at
// once), so the next read goes to a fresh buffer.
import { connect, type Socket } from 'node:net';

const READ_BUFFER_BYTES = 64 * 1024;

export class DirectReads {
  private buffer = Buffer.allocUnsafeSlow(READ_BUFFER_BYTES);
  private sink: ((view: Buffer) => void) | undefined;
  private pinned = false;
  socket!: Socket;

  /** Hands every following read to `sink` as a view of the shared buffer. */
  setSink(sink: (view: Buffer) => void): void {
    this.sink = sink;
  }

  /** The current view's memory outlives the call: do not read into it again. */
  pin(): void {
    this.pinned = true;
  }

  readonly nextBuffer = (): Buffer => {
    if (this.pinned) {
      this.pinned = false;
      this.buffer = Buffer.allocUnsafeSlow(READ_BUFFER_BYTES);
    }
    return this.buffer;
  };

  readonly onRead = (nread: number, buf: Uint8Array): boolean => {
    const view = Buffer.from(buf.buffer, buf.byteOffset, nread);
    if (this.sink) this.sink(view);
    else this.socket.emit('data', Buffer.from(view));
    return true;
  };
}

const bySocket = new WeakMap<Socket, DirectReads>();

/** A TCP connection whose reads go through a DirectReads (see directReadsOf). */
export function connectWithDirectReads(host: string, port: number): Socket {
  const reads = new DirectReads();
  const socket = connect({ host, port, onread: { buffer: reads.nextBuffer, callback: reads.onRead } });
  reads.socket = socket;
  bySocket.set(socket, reads);
  return socket;
}

export function directReadsOf(socket: Socket): DirectReads | undefined {
  return bySocket.get(socket);
}
