// The port-forward reader on SPDY/3.1 frames written here the way kubectl and the apiserver write
// them: header blocks compressed by one zlib stream per direction with the SPDY/3 dictionary.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { constants, createDeflate, type Deflate } from 'node:zlib';
import { type ForwardedStream, PortForwardReader } from './portforward.ts';

function deflater(dictionary: Buffer): { d: Deflate; block(raw: Buffer): Promise<Buffer> } {
  const d = createDeflate({ dictionary });
  let out: Buffer[] = [];
  d.on('data', (c: Buffer) => out.push(c));
  return {
    d,
    block: (raw) =>
      new Promise((resolve) => {
        d.write(raw);
        d.flush(constants.Z_SYNC_FLUSH, () => {
          const b = Buffer.concat(out);
          out = [];
          resolve(b);
        });
      }),
  };
}

function headerBlock(h: Record<string, string>): Buffer {
  const parts: Buffer[] = [];
  const u32 = (n: number) => {
    const b = Buffer.alloc(4);
    b.writeUInt32BE(n);
    return b;
  };
  parts.push(u32(Object.keys(h).length));
  for (const [k, v] of Object.entries(h))
    parts.push(u32(k.length), Buffer.from(k), u32(v.length), Buffer.from(v));
  return Buffer.concat(parts);
}

function control(type: number, flags: number, payload: Buffer): Buffer {
  const h = Buffer.alloc(8);
  h.writeUInt16BE(0x8000 | 3, 0);
  h.writeUInt16BE(type, 2);
  h[4] = flags;
  h.writeUIntBE(payload.length, 5, 3);
  return Buffer.concat([h, payload]);
}

function data(stream: number, flags: number, payload: Buffer): Buffer {
  const h = Buffer.alloc(8);
  h.writeUInt32BE(stream, 0);
  h[4] = flags;
  h.writeUIntBE(payload.length, 5, 3);
  return Buffer.concat([h, payload]);
}

async function synStream(z: ReturnType<typeof deflater>, id: number, headers: Record<string, string>) {
  const p = Buffer.alloc(10);
  p.writeUInt32BE(id, 0);
  return control(1, 0, Buffer.concat([p, await z.block(headerBlock(headers))]));
}

test('port-forward reader: ports and stream types from SYN_STREAM headers, bytes each way, FIN and RST, byte-by-byte delivery', async () => {
  const { SPDY3_DICTIONARY } = await import('./portforward.ts');
  const ended: ForwardedStream[] = [];
  const r = new PortForwardReader((s) => ended.push(s));
  const client = deflater(SPDY3_DICTIONARY);
  const toPod = Buffer.concat([
    await synStream(client, 1, { streamtype: 'error', port: '8080', requestid: '0' }),
    await synStream(client, 3, { streamtype: 'data', port: '8080', requestid: '0' }),
    data(3, 0, Buffer.from('GET / HTTP/1.1\r\n\r\n')),
    data(3, 1, Buffer.alloc(0)),
    // A second connection to another port: the next header block depends on the ones before.
    await synStream(client, 5, { streamtype: 'data', port: '9090', requestid: '1' }),
    data(5, 0, Buffer.alloc(70_000, 'u')),
  ]);
  const fromPod = Buffer.concat([data(3, 0, Buffer.alloc(1000, 'x')), data(3, 1, Buffer.from('end'))]);
  // Byte by byte, interleaved: no frame arrives whole.
  for (const b of toPod.subarray(0, 200)) r.fromClient.push(Buffer.from([b]));
  for (const b of fromPod) r.fromServer.push(Buffer.from([b]));
  r.fromClient.push(toPod.subarray(200));
  r.fromServer.push(control(3, 0, Buffer.from([0, 0, 0, 5, 0, 0, 0, 5])));
  r.close();
  assert.equal(r.error, undefined);
  const byId = Object.fromEntries(ended.map((s) => [s.streamId, s]));
  assert.deepEqual(
    { port: byId[3]!.port, type: byId[3]!.streamType, to: byId[3]!.bytesToPod, from: byId[3]!.bytesFromPod },
    { port: 8080, type: 'data', to: 18, from: 1003 },
  );
  assert.equal(byId[3]!.reset, false);
  assert.deepEqual(
    { port: byId[5]!.port, id: byId[5]!.requestId, to: byId[5]!.bytesToPod, reset: byId[5]!.reset },
    { port: 9090, id: '1', to: 70_000, reset: true },
  );
  assert.equal(byId[1]!.streamType, 'error');
  assert.deepEqual(
    ended.map((s) => s.streamId),
    [3, 5, 1],
  );
});

test('port-forward reader: not SPDY/3 or an oversized control frame stops the reading, not the relay', () => {
  const r = new PortForwardReader(() => {});
  const bad = Buffer.alloc(8);
  bad.writeUInt16BE(0x8000 | 2, 0);
  r.fromClient.push(bad);
  assert.match(r.error ?? '', /SPDY version 2/);
  const r2 = new PortForwardReader(() => {});
  const big = Buffer.alloc(8);
  big.writeUInt16BE(0x8000 | 3, 0);
  big.writeUInt16BE(1, 2);
  big.writeUIntBE(1 << 20, 5, 3);
  r2.fromServer.push(big);
  assert.match(r2.error ?? '', /control frame of 1048576 bytes/);
});
