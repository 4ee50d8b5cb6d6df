// Port-forward over the plain channel WebSocket protocol (`v4.channel.k8s.io`, or v5, as client libraries
// such as @kubernetes/client-node and the Python client speak it; kubectl tunnels SPDY instead, see
// portforward.ts). The URL asks for ports (`?ports=8080&ports=5432`); port number i gets channel 2i
// for its data and 2i+1 for the kubelet's error text. Every message starts with its channel byte,
// and the server's first message on each channel with the port as two little-endian bytes. This
// passive reader follows the messages in each direction and counts each channel's data bytes; it
// keeps nothing of the data itself.
import type { Frame } from '../http/ws-frames.ts';
import type { ForwardedStream } from './portforward.ts';

/** The `ports` a port-forward URL asks for, in order (the channel of port i is 2i). */
export function requestedPorts(query: string): number[] {
  return new URLSearchParams(query)
    .getAll('ports')
    .flatMap((v) => v.split(','))
    .map((p) => Number(p.trim()));
}

/** v5.channel.k8s.io: a message on this channel half-closes the named channel. */
const CLOSE_CHANNEL = 255;

interface Direction {
  /** Channel of the message being read; undefined before the first message or after a control frame. */
  channel: number | undefined;
}

export class ChannelPortForwardReader {
  private readonly streams = new Map<number, ForwardedStream>();
  private readonly announced = new Set<number>();
  private readonly ports: readonly number[];
  private readonly ended: (s: ForwardedStream) => void;
  private readonly fromClient: Direction = { channel: undefined };
  private readonly fromServer: Direction = { channel: undefined };

  constructor(ports: readonly number[], ended: (s: ForwardedStream) => void) {
    this.ports = ports;
    this.ended = ended;
  }

  /** One WebSocket frame as the relay saw it (FrameReader's onFrame). */
  frame(direction: 'client' | 'server', f: Frame): void {
    const d = direction === 'client' ? this.fromClient : this.fromServer;
    if (f.opcode !== 'binary' && f.opcode !== 'text') return;
    let bytes = f.bytes;
    if (f.first) {
      if (f.data.length === 0) {
        d.channel = undefined;
        return;
      }
      // v5's channel 255 carries a close signal, not data.
      d.channel = f.data[0] === CLOSE_CHANNEL ? undefined : f.data[0]!;
      if (d.channel === undefined) return;
      bytes -= 1;
      if (direction === 'server' && !this.announced.has(d.channel)) {
        // The port prefix: the kubelet's first message on each channel.
        this.announced.add(d.channel);
        const s = this.stream(d.channel);
        if (f.data.length >= 3) s.port = f.data.readUInt16LE(1);
        bytes -= Math.min(2, bytes);
      }
    }
    if (d.channel === undefined || bytes <= 0) return;
    const s = this.stream(d.channel);
    if (direction === 'client') s.bytesToPod += bytes;
    else s.bytesFromPod += bytes;
  }

  private stream(channel: number): ForwardedStream {
    let s = this.streams.get(channel);
    if (!s) {
      const port = this.ports[channel >> 1];
      s = {
        streamId: channel,
        ...(port !== undefined && Number.isInteger(port) && port > 0 ? { port } : {}),
        streamType: channel % 2 === 0 ? 'data' : 'error',
        bytesToPod: 0,
        bytesFromPod: 0,
        finToPod: false,
        finFromPod: false,
        reset: false,
      };
      this.streams.set(channel, s);
    }
    return s;
  }

  /** The connection closed: every channel that carried anything is reported, in channel order. */
  close(): void {
    const channels = [...this.streams.keys()].sort((a, b) => a - b);
    for (const c of channels) {
      const s = this.streams.get(c)!;
      this.streams.delete(c);
      s.finToPod = true;
      s.finFromPod = true;
      this.ended(s);
    }
  }
}
