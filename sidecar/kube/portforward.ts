// kubectl port-forward through the Kubernetes target: kubectl 1.31+ tunnels SPDY/3.1 inside a
// WebSocket (subprotocol `SPDY/3.1+portforward.k8s.io`). This passive reader follows the SPDY frames
// in each direction (RFC-less SPDY/3.1 framing: 8-byte headers, zlib-compressed header blocks) to
// learn each stream's port and kind from its SYN_STREAM headers (`port`, `streamtype`, `requestid`)
// and count the data bytes each way. It never holds more than one frame header plus one header
// block (at most MAX_HEADER_BLOCK bytes); data frames are counted, not kept.
import { constants, inflateSync } from 'node:zlib';

/** The SPDY/3 header compression dictionary (SPDY draft 3, §2.6.10.1), as spdy-transport 3.0.0 carries it. */
export const SPDY3_DICTIONARY = Buffer.from(
  'AAAAB29wdGlvbnMAAAAEaGVhZAAAAARwb3N0AAAAA3B1dAAAAAZkZWxldGUAAAAFdHJhY2UAAAAGYWNjZXB0AAAADmFjY2Vw' +
    'dC1jaGFyc2V0AAAAD2FjY2VwdC1lbmNvZGluZwAAAA9hY2NlcHQtbGFuZ3VhZ2UAAAANYWNjZXB0LXJhbmdlcwAAAANhZ2UA' +
    'AAAFYWxsb3cAAAANYXV0aG9yaXphdGlvbgAAAA1jYWNoZS1jb250cm9sAAAACmNvbm5lY3Rpb24AAAAMY29udGVudC1iYXNl' +
    'AAAAEGNvbnRlbnQtZW5jb2RpbmcAAAAQY29udGVudC1sYW5ndWFnZQAAAA5jb250ZW50LWxlbmd0aAAAABBjb250ZW50LWxv' +
    'Y2F0aW9uAAAAC2NvbnRlbnQtbWQ1AAAADWNvbnRlbnQtcmFuZ2UAAAAMY29udGVudC10eXBlAAAABGRhdGUAAAAEZXRhZwAA' +
    'AAZleHBlY3QAAAAHZXhwaXJlcwAAAARmcm9tAAAABGhvc3QAAAAIaWYtbWF0Y2gAAAARaWYtbW9kaWZpZWQtc2luY2UAAAAN' +
    'aWYtbm9uZS1tYXRjaAAAAAhpZi1yYW5nZQAAABNpZi11bm1vZGlmaWVkLXNpbmNlAAAADWxhc3QtbW9kaWZpZWQAAAAIbG9j' +
    'YXRpb24AAAAMbWF4LWZvcndhcmRzAAAABnByYWdtYQAAABJwcm94eS1hdXRoZW50aWNhdGUAAAATcHJveHktYXV0aG9yaXph' +
    'dGlvbgAAAAVyYW5nZQAAAAdyZWZlcmVyAAAAC3JldHJ5LWFmdGVyAAAABnNlcnZlcgAAAAJ0ZQAAAAd0cmFpbGVyAAAAEXRy' +
    'YW5zZmVyLWVuY29kaW5nAAAAB3VwZ3JhZGUAAAAKdXNlci1hZ2VudAAAAAR2YXJ5AAAAA3ZpYQAAAAd3YXJuaW5nAAAAEHd3' +
    'dy1hdXRoZW50aWNhdGUAAAAGbWV0aG9kAAAAA2dldAAAAAZzdGF0dXMAAAAGMjAwIE9LAAAAB3ZlcnNpb24AAAAISFRUUC8x' +
    'LjEAAAADdXJsAAAABnB1YmxpYwAAAApzZXQtY29va2llAAAACmtlZXAtYWxpdmUAAAAGb3JpZ2luMTAwMTAxMjAxMjAyMjA1' +
    'MjA2MzAwMzAyMzAzMzA0MzA1MzA2MzA3NDAyNDA1NDA2NDA3NDA4NDA5NDEwNDExNDEyNDEzNDE0NDE1NDE2NDE3NTAyNTA0' +
    'NTA1MjAzIE5vbi1BdXRob3JpdGF0aXZlIEluZm9ybWF0aW9uMjA0IE5vIENvbnRlbnQzMDEgTW92ZWQgUGVybWFuZW50bHk0' +
    'MDAgQmFkIFJlcXVlc3Q0MDEgVW5hdXRob3JpemVkNDAzIEZvcmJpZGRlbjQwNCBOb3QgRm91bmQ1MDAgSW50ZXJuYWwgU2Vy' +
    'dmVyIEVycm9yNTAxIE5vdCBJbXBsZW1lbnRlZDUwMyBTZXJ2aWNlIFVuYXZhaWxhYmxlSmFuIEZlYiBNYXIgQXByIE1heSBK' +
    'dW4gSnVsIEF1ZyBTZXB0IE9jdCBOb3YgRGVjIDAwOjAwOjAwIE1vbiwgVHVlLCBXZWQsIFRodSwgRnJpLCBTYXQsIFN1biwg' +
    'R01UY2h1bmtlZCx0ZXh0L2h0bWwsaW1hZ2UvcG5nLGltYWdlL2pwZyxpbWFnZS9naWYsYXBwbGljYXRpb24veG1sLGFwcGxp' +
    'Y2F0aW9uL3hodG1sK3htbCx0ZXh0L3BsYWluLHRleHQvamF2YXNjcmlwdCxwdWJsaWNwcml2YXRlbWF4LWFnZT1nemlwLGRl' +
    'ZmxhdGUsc2RjaGNoYXJzZXQ9dXRmLThjaGFyc2V0PWlzby04ODU5LTEsdXRmLSwqLGVucT0wLg==',
  'base64',
);

const MAX_HEADER_BLOCK = 64 * 1024;
/** Header bytes of a connection kept for decompression (each block depends on the ones before). */
const MAX_HEADER_HISTORY = 1024 * 1024;

const SYN_STREAM = 1;
const RST_STREAM = 3;
const FLAG_FIN = 0x01;

export interface ForwardedStream {
  streamId: number;
  port?: number;
  /** `data` carries the forwarded bytes; `error` carries the kubelet's error text for a port. */
  streamType?: string;
  requestId?: string;
  /** Bytes from kubectl to the pod's port, and back. */
  bytesToPod: number;
  bytesFromPod: number;
  finToPod: boolean;
  finFromPod: boolean;
  reset: boolean;
}

/** One direction's SPDY frame reader. */
class SpdyDirection {
  private header = Buffer.alloc(0);
  private skip = 0;
  private block: { type: number; flags: number; need: number; parts: Buffer[]; got: number } | undefined;
  private dataStream = 0;
  private dataFlags = 0;
  private compressed: Buffer[] = [];
  private compressedBytes = 0;
  private inflated = 0;
  error: string | undefined;

  private readonly onData: (streamId: number, bytes: number, fin: boolean) => void;
  private readonly onControl: (
    type: number,
    flags: number,
    payload: Buffer,
    headers?: Map<string, string>,
  ) => void;

  constructor(onData: SpdyDirection['onData'], onControl: SpdyDirection['onControl']) {
    this.onData = onData;
    this.onControl = onControl;
  }

  push(chunk: Buffer): void {
    let pos = 0;
    while (pos < chunk.length && !this.error) {
      if (this.skip > 0) {
        const take = Math.min(this.skip, chunk.length - pos);
        this.skip -= take;
        pos += take;
        if (take > 0)
          this.onData(this.dataStream, take, this.skip === 0 && (this.dataFlags & FLAG_FIN) !== 0);
        continue;
      }
      if (this.block) {
        const b = this.block;
        const take = Math.min(b.need - b.got, chunk.length - pos);
        b.parts.push(chunk.subarray(pos, pos + take));
        b.got += take;
        pos += take;
        if (b.got === b.need) {
          this.block = undefined;
          this.control(b.type, b.flags, Buffer.concat(b.parts));
        }
        continue;
      }
      const take = Math.min(8 - this.header.length, chunk.length - pos);
      this.header = Buffer.concat([this.header, chunk.subarray(pos, pos + take)]);
      pos += take;
      if (this.header.length === 8) this.frame(this.header);
    }
  }

  private frame(h: Buffer): void {
    this.header = Buffer.alloc(0);
    const flags = h[4]!;
    const length = h.readUIntBE(5, 3);
    if ((h[0]! & 0x80) === 0) {
      // A data frame: stream id, flags, length; the payload is counted, not kept.
      this.dataStream = h.readUInt32BE(0) & 0x7fffffff;
      this.dataFlags = flags;
      this.skip = length;
      if (length === 0) this.onData(this.dataStream, 0, (flags & FLAG_FIN) !== 0);
      return;
    }
    const version = h.readUInt16BE(0) & 0x7fff;
    if (version !== 3) {
      this.error = `SPDY version ${version}`;
      return;
    }
    if (length > MAX_HEADER_BLOCK) {
      this.error = `a control frame of ${length} bytes`;
      return;
    }
    const type = h.readUInt16BE(2);
    if (length === 0) this.control(type, flags, Buffer.alloc(0));
    else this.block = { type, flags, need: length, parts: [], got: 0 };
  }

  private control(type: number, flags: number, payload: Buffer): void {
    // SYN_STREAM: stream id, associated id, priority, slot, then the compressed header block.
    if (type === SYN_STREAM && payload.length >= 10) {
      this.onControl(type, flags, payload, this.headers(payload.subarray(10)));
      return;
    }
    this.onControl(type, flags, payload);
  }

  /** Decompresses one header block; the zlib stream spans the connection, so the history is kept. */
  private headers(block: Buffer): Map<string, string> | undefined {
    if (this.compressedBytes + block.length > MAX_HEADER_HISTORY) return undefined;
    this.compressed.push(block);
    this.compressedBytes += block.length;
    let all: Buffer;
    try {
      all = inflateSync(Buffer.concat(this.compressed), {
        dictionary: SPDY3_DICTIONARY,
        finishFlush: constants.Z_SYNC_FLUSH,
      });
    } catch {
      return undefined;
    }
    const raw = all.subarray(this.inflated);
    this.inflated = all.length;
    const out = new Map<string, string>();
    if (raw.length < 4) return out;
    const pairs = raw.readUInt32BE(0);
    let p = 4;
    for (let i = 0; i < pairs && p + 4 <= raw.length; i++) {
      const nl = raw.readUInt32BE(p);
      const name = raw.subarray(p + 4, p + 4 + nl).toString('latin1');
      p += 4 + nl;
      if (p + 4 > raw.length) break;
      const vl = raw.readUInt32BE(p);
      out.set(name, raw.subarray(p + 4, p + 4 + vl).toString('latin1'));
      p += 4 + vl;
    }
    return out;
  }
}

/** Both directions of one port-forward connection; `ended` reports each stream once it is over. */
export class PortForwardReader {
  private readonly streams = new Map<number, ForwardedStream>();
  readonly fromClient: SpdyDirection;
  readonly fromServer: SpdyDirection;

  private readonly ended: (s: ForwardedStream) => void;

  constructor(ended: (s: ForwardedStream) => void) {
    this.ended = ended;
    this.fromClient = new SpdyDirection(
      (id, n, fin) => this.data(id, 'bytesToPod', n, fin),
      (type, flags, payload, headers) => this.control(type, flags, payload, headers),
    );
    this.fromServer = new SpdyDirection(
      (id, n, fin) => this.data(id, 'bytesFromPod', n, fin),
      (type, flags, payload, headers) => this.control(type, flags, payload, headers),
    );
  }

  get error(): string | undefined {
    return this.fromClient.error ?? this.fromServer.error;
  }

  private stream(id: number): ForwardedStream {
    let s = this.streams.get(id);
    if (!s) {
      s = { streamId: id, bytesToPod: 0, bytesFromPod: 0, finToPod: false, finFromPod: false, reset: false };
      this.streams.set(id, s);
    }
    return s;
  }

  private data(id: number, field: 'bytesToPod' | 'bytesFromPod', n: number, fin: boolean): void {
    const s = this.stream(id);
    s[field] += n;
    if (fin) {
      if (field === 'bytesToPod') s.finToPod = true;
      else s.finFromPod = true;
      if (s.finToPod && s.finFromPod) this.end(s);
    }
  }

  private control(type: number, flags: number, payload: Buffer, headers?: Map<string, string>): void {
    if (payload.length < 4) return;
    const id = payload.readUInt32BE(0) & 0x7fffffff;
    if (type === SYN_STREAM) {
      const s = this.stream(id);
      const port = Number(headers?.get('port'));
      if (Number.isInteger(port) && port > 0) s.port = port;
      const streamType = headers?.get('streamtype');
      if (streamType) s.streamType = streamType;
      const requestId = headers?.get('requestid');
      if (requestId) s.requestId = requestId;
      if (flags & FLAG_FIN) s.finToPod = true;
    } else if (type === RST_STREAM && this.streams.has(id)) {
      const s = this.stream(id);
      s.reset = true;
      this.end(s);
    }
  }

  private end(s: ForwardedStream): void {
    if (!this.streams.delete(s.streamId)) return;
    this.ended(s);
  }

  /** The connection closed: every stream still open is reported. */
  close(): void {
    for (const s of [...this.streams.values()]) this.end(s);
  }
}
