// Reads of a plain TCP socket into one reused buffer (net's `onread` option) instead of a fresh
// allocation and a trip through the Readable stream per read. Until a sink is set, each read is
// copied and emitted as an ordinary 'data' event, so login code keeps using socket events.
// A sink sees a view that is only valid during the call: it must copy whatever it keeps, and call
// pin() when memory of the view is still referenced afterwards (a write the kernel did not take at
// once), so the next read goes to a fresh buffer.
import { connect, type Server, Socket, type SocketConstructorOpts } from 'node:net';

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

/** The internals of an accepted socket that adoptWithDirectReads moves to a socket of its own. */
interface AcceptedSocket {
  _handle?: { readStart?: unknown } | null;
  _server?: Server | null;
  server?: Server | null;
}

/**
 * The agent's side: net.Server has no `onread` option, so a socket accepted with `pauseOnConnect`
 * (nothing read yet) hands its handle to a new Socket that reads into one reused buffer and emits
 * each read as a 'data' event of its own copy (pooled for small reads): no Readable push, no fresh
 * 64 KiB read buffer per read, the same events for its users. The server's connection count moves
 * with the handle, so server.close() still waits for it. When the internals are not as expected
 * (another Node), the accepted socket is resumed and used as it is.
 */
export function adoptWithDirectReads(accepted: Socket): Socket {
  const old = accepted as unknown as AcceptedSocket;
  const handle = old._handle;
  if (!handle || typeof handle.readStart !== 'function' || !old._server) {
    accepted.resume();
    return accepted;
  }
  const buffer = Buffer.allocUnsafeSlow(READ_BUFFER_BYTES);
  const socket: Socket = new Socket({
    handle,
    allowHalfOpen: accepted.allowHalfOpen,
    onread: {
      buffer,
      callback: (nread: number, buf: Uint8Array) => {
        socket.emit('data', Buffer.from(buf.subarray(0, nread)));
        return true;
      },
    },
    // `handle` of an accepted socket: not in the typings, which know only BoundSocket.
  } as unknown as SocketConstructorOpts);
  const server = old._server;
  old._handle = null;
  old._server = null;
  old.server = null;
  const adopted = socket as unknown as AcceptedSocket;
  adopted._server = server;
  adopted.server = server;
  return socket;
}
