import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Frame } from '../http/ws-frames.ts';
import type { ForwardedStream } from './portforward.ts';
import { ChannelPortForwardReader, requestedPorts } from './portforward-channels.ts';

/** One whole message as FrameReader reports it (payload within the cap). */
const message = (data: Buffer, opcode: Frame['opcode'] = 'binary'): Frame => ({
  opcode,
  first: true,
  fin: true,
  bytes: data.length,
  data,
});
const port = (n: number) => {
  const b = Buffer.alloc(2);
  b.writeUInt16LE(n);
  return b;
};

describe('port-forward over the channel protocol', () => {
  it('reads the requested ports from the URL, repeated or comma-separated', () => {
    assert.deepEqual(requestedPorts('ports=8080&ports=5432'), [8080, 5432]);
    assert.deepEqual(requestedPorts('ports=8080,9090'), [8080, 9090]);
    assert.deepEqual(requestedPorts('timeout=5'), []);
  });

  it("counts each channel's data bytes both ways, without the channel byte and the port prefix", () => {
    const ended: ForwardedStream[] = [];
    const r = new ChannelPortForwardReader([8080, 5432], (s) => ended.push(s));
    // The kubelet announces each channel's port first (data and error channel of both ports).
    for (const [ch, p] of [
      [0, 8080],
      [1, 8080],
      [2, 5432],
      [3, 5432],
    ] as const)
      r.frame('server', message(Buffer.concat([Buffer.from([ch]), port(p)])));
    r.frame('client', message(Buffer.from([0, ...Buffer.from('GET / HTTP/1.0\r\n\r\n')])));
    // A reply in two frames: the continuation carries no channel byte.
    r.frame('server', {
      opcode: 'binary',
      first: true,
      fin: false,
      bytes: 10,
      data: Buffer.from([0, ...Buffer.from('HTTP/1.0 ')]),
    });
    r.frame('server', { opcode: 'binary', first: false, fin: true, bytes: 7, data: Buffer.from('200 OK\n') });
    r.frame('client', message(Buffer.from([2, 1, 2, 3])));
    r.frame('server', message(Buffer.from([3, ...Buffer.from('refused')])));
    r.frame('client', message(Buffer.from([255, 0]))); // v5 close of channel 0: not data
    r.frame('client', message(Buffer.alloc(0), 'ping'));
    assert.equal(ended.length, 0, 'nothing is reported before the connection ends');
    r.close();
    assert.deepEqual(
      ended.map((s) => [s.streamId, s.port, s.streamType, s.bytesToPod, s.bytesFromPod]),
      [
        [0, 8080, 'data', 18, 16],
        [1, 8080, 'error', 0, 0],
        [2, 5432, 'data', 3, 0],
        [3, 5432, 'error', 0, 7],
      ],
    );
  });

  it('takes the port the kubelet announces over the URL, and one the URL did not name', () => {
    const ended: ForwardedStream[] = [];
    const r = new ChannelPortForwardReader([], (s) => ended.push(s));
    r.frame('server', message(Buffer.concat([Buffer.from([0]), port(9000), Buffer.from('hi')])));
    r.close();
    assert.deepEqual(
      ended.map((s) => [s.streamId, s.port, s.bytesFromPod]),
      [[0, 9000, 2]],
    );
  });
});
