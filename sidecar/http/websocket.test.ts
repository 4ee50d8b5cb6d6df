import assert from 'node:assert/strict';
import { test } from 'node:test';
import { terminalEvent } from './websocket.ts';
import { type Frame, FrameReader } from './ws-frames.ts';

function frame(opcode: number, payload: Buffer, opts: { fin?: boolean; mask?: Buffer } = {}): Buffer {
  const len = payload.length;
  const head: number[] = [(opts.fin === false ? 0 : 0x80) | opcode];
  const m = opts.mask ? 0x80 : 0;
  if (len < 126) head.push(m | len);
  else head.push(m | 126, len >> 8, len & 0xff);
  const body = Buffer.from(payload);
  if (opts.mask) for (let i = 0; i < body.length; i++) body[i]! ^= opts.mask[i % 4]!;
  return Buffer.concat([Buffer.from(head), opts.mask ?? Buffer.alloc(0), body]);
}

test('frame reader: masked and unmasked frames, 16-bit lengths, fragments, byte-by-byte delivery, the cap', () => {
  const got: Frame[] = [];
  const r = new FrameReader(300, (f) => got.push(f));
  const big = Buffer.alloc(1000, 'x');
  const stream = Buffer.concat([
    frame(1, Buffer.from('hello'), { mask: Buffer.from([1, 2, 3, 4]) }),
    frame(2, big),
    frame(1, Buffer.from('part1-'), { fin: false }),
    frame(9, Buffer.from('ping')),
    frame(0, Buffer.from('part2')),
    frame(8, Buffer.from([0x03, 0xe8])),
  ]);
  for (const b of stream) r.push(Buffer.from([b]));
  assert.equal(r.error, undefined);
  assert.deepEqual(
    got.map((f) => [f.opcode, f.first, f.fin, f.bytes, f.data.length]),
    [
      ['text', true, true, 5, 5],
      ['binary', true, true, 1000, 300],
      ['text', true, false, 6, 6],
      ['ping', true, true, 4, 4],
      ['text', false, true, 5, 5],
      ['close', true, true, 2, 2],
    ],
  );
  assert.equal(got[0]!.data.toString(), 'hello');
  const bad = new FrameReader(10, () => {});
  bad.push(Buffer.from([0x83, 0x00]));
  assert.match(bad.error ?? '', /unknown opcode 3/);
});

test('kubernetes exec channels become terminal events: stdin, stdout, stderr, resize, exit code', () => {
  const msg = (stream: number, text: string) => Buffer.concat([Buffer.from([stream]), Buffer.from(text)]);
  assert.deepEqual(terminalEvent('7', 'client', msg(0, 'ls\r')), {
    kind: 'terminal.input',
    direction: 'client',
    payload: { channel: '7', stream: 'stdin', data: Buffer.from('ls\r').toString('base64') },
  });
  assert.equal(terminalEvent('7', 'server', msg(2, 'oops'))?.payload.stream, 'stderr');
  assert.deepEqual(terminalEvent('7', 'client', msg(4, '{"Width":120,"Height":40}'))?.payload, {
    channel: '7',
    cols: 120,
    rows: 40,
  });
  assert.deepEqual(terminalEvent('7', 'server', msg(3, '{"metadata":{},"status":"Success"}'))?.payload, {
    channel: '7',
    code: 0,
  });
  const failed = JSON.stringify({
    status: 'Failure',
    reason: 'NonZeroExitCode',
    message: 'command terminated with non-zero exit code',
    details: { causes: [{ reason: 'ExitCode', message: '3' }] },
  });
  assert.deepEqual(terminalEvent('7', 'server', msg(3, failed))?.payload, { channel: '7', code: 3 });
  assert.equal(terminalEvent('7', 'server', msg(1, '')), undefined);
});
