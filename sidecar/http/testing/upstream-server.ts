// A real HTTPS server for the HTTP gateway's tests (node:https, certificate from a fresh test CA):
// echoes what it received, streams uploads and downloads, serves JSON with sensitive values, and
// echoes WebSocket messages (frames written by hand, read with the gateway's own FrameReader).
import { createHash } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer, type Server } from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import { generateControlPlanePki } from '../../../test/env/kube-certs.ts';
import { FrameReader } from '../ws-frames.ts';

export interface SeenRequest {
  method: string;
  url: string;
  headers: Record<string, string | string[] | undefined>;
  clientCert?: string;
}

export interface UpstreamServer {
  port: number;
  caPem: string;
  /** A client certificate the CA issued (mTLS tests). */
  client: { certPem: string; keyPem: string };
  seen: SeenRequest[];
  /** Called when an /upload body has fully arrived, before the answer (a test looks around then). */
  onUploadEnd?: ((url: string) => Promise<void> | void) | undefined;
  close(): Promise<void>;
}

const WS_GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';

function wsFrame(opcode: number, payload: Buffer): Buffer {
  const len = payload.length;
  const head =
    len < 126
      ? Buffer.from([0x80 | opcode, len])
      : len < 65536
        ? Buffer.from([0x80 | opcode, 126, len >> 8, len & 0xff])
        : (() => {
            const b = Buffer.alloc(10);
            b[0] = 0x80 | opcode;
            b[1] = 127;
            b.writeBigUInt64BE(BigInt(len), 2);
            return b;
          })();
  return Buffer.concat([head, payload]);
}

export async function startUpstreamServer(
  opts: { requireClientCert?: boolean } = {},
): Promise<UpstreamServer> {
  const pki = await generateControlPlanePki();
  const seen: SeenRequest[] = [];
  const server: Server = createServer(
    {
      cert: pki.apiserver.certPem,
      key: pki.apiserver.keyPem,
      ca: pki.ca.certPem,
      requestCert: opts.requireClientCert ?? false,
      rejectUnauthorized: opts.requireClientCert ?? false,
    },
    (req: IncomingMessage, res: ServerResponse) => {
      const peer = (req.socket as import('node:tls').TLSSocket).getPeerCertificate?.();
      seen.push({
        method: req.method ?? '',
        url: req.url ?? '',
        headers: { ...req.headers },
        ...(peer?.subject?.CN ? { clientCert: String(peer.subject.CN) } : {}),
      });
      const url = new URL(req.url ?? '/', 'https://upstream');
      if (url.pathname === '/upload') {
        const hash = createHash('sha256');
        let bytes = 0;
        req.on('data', (c: Buffer) => {
          bytes += c.length;
          hash.update(c);
        });
        req.on('end', async () => {
          await upstream.onUploadEnd?.(req.url ?? '');
          res.writeHead(200, { 'content-type': 'application/json' });
          res.end(JSON.stringify({ bytes, sha256: hash.digest('hex') }));
        });
        return;
      }
      if (url.pathname === '/download') {
        const total = Number(url.searchParams.get('bytes') ?? '0');
        const chunk = Buffer.alloc(64 * 1024, 'chaperone ');
        res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(total) });
        let sent = 0;
        const pump = () => {
          while (sent < total) {
            const part = chunk.subarray(0, Math.min(chunk.length, total - sent));
            sent += part.length;
            if (!res.write(part)) {
              res.once('drain', pump);
              return;
            }
          }
          res.end();
        };
        pump();
        return;
      }
      if (url.pathname === '/users') {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(
          JSON.stringify({
            users: [
              {
                id: 1,
                name: 'Ann',
                email: 'ann@example.com',
                ssn: '078-05-1120',
                note: 'card 4111 1111 1111 1111',
              },
            ],
          }),
        );
        return;
      }
      const body: Buffer[] = [];
      req.on('data', (c: Buffer) => body.push(c));
      req.on('end', () => {
        res.writeHead(200, { 'content-type': 'application/json', 'set-cookie': 'upstream-session=secret' });
        res.end(
          JSON.stringify({
            method: req.method,
            url: req.url,
            httpVersion: req.httpVersion,
            headers: req.headers,
            body: Buffer.concat(body).toString('utf8'),
          }),
        );
      });
    },
  );
  server.on('upgrade', (req: IncomingMessage, socket: Socket) => {
    seen.push({ method: req.method ?? '', url: req.url ?? '', headers: { ...req.headers } });
    const key = String(req.headers['sec-websocket-key']);
    const accept = createHash('sha1')
      .update(key + WS_GUID)
      .digest('base64');
    socket.write(
      `HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: Upgrade\r\nsec-websocket-accept: ${accept}\r\n\r\n`,
    );
    const reader = new FrameReader(1 << 20, (f) => {
      if (f.opcode === 'close') {
        socket.end(wsFrame(8, f.data));
        return;
      }
      if (f.opcode === 'text') socket.write(wsFrame(1, Buffer.from(`echo: ${f.data.toString('utf8')}`)));
      if (f.opcode === 'binary') socket.write(wsFrame(2, f.data));
    });
    socket.on('data', (c: Buffer) => reader.push(c));
    socket.on('error', () => socket.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  const upstream: UpstreamServer = {
    port,
    caPem: pki.ca.certPem,
    client: pki.admin,
    seen,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
  return upstream;
}
