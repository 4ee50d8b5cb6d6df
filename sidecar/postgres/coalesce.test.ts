import assert from 'node:assert/strict';
import type { Socket } from 'node:net';
import { test } from 'node:test';
import { WriteCoalescer } from './coalesce.ts';

/** A socket stand-in that records each write, and which writes went out under one cork. */
function recordingSocket() {
  const batches: string[][] = [];
  let corked: string[] | undefined;
  const socket = {
    write: (b: Buffer) => {
      const s = Buffer.from(b).toString();
      if (corked) corked.push(s);
      else batches.push([s]);
      return true;
    },
    cork: () => {
      corked = [];
    },
    uncork: () => {
      if (corked) batches.push(corked);
      corked = undefined;
    },
  } as unknown as Socket;
  return { socket, batches };
}

test('adjacent messages become one write; built bytes keep their place', () => {
  const { socket, batches } = recordingSocket();
  const c = new WriteCoalescer(socket);
  const chunk = Buffer.from('aaabbbccc');
  c.forward(chunk.subarray(0, 3));
  c.forward(chunk.subarray(3, 6));
  c.send(Buffer.from('XX'));
  c.forward(chunk.subarray(6, 9));
  c.forward(Buffer.from('ddd')); // other memory
  c.flush();
  c.flush();
  assert.deepEqual(batches, [['aaabbb', 'XX', 'ccc', 'ddd']]);
});

test('a single run or a single built message is one plain write', () => {
  const { socket, batches } = recordingSocket();
  const c = new WriteCoalescer(socket);
  const chunk = Buffer.from('aaabbb');
  c.forward(chunk.subarray(0, 3));
  c.forward(chunk.subarray(3, 6));
  c.flush();
  c.send(Buffer.from('XX'));
  c.flush();
  c.flush();
  assert.deepEqual(batches, [['aaabbb'], ['XX']]);
});
