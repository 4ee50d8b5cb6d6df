import assert from 'node:assert/strict';
import type { Socket } from 'node:net';
import { test } from 'node:test';
import { WriteCoalescer } from './coalesce.ts';

test('adjacent messages become one write; built bytes keep their place', () => {
  const writes: Buffer[] = [];
  const socket = { write: (b: Buffer) => writes.push(Buffer.from(b)) } as unknown as Socket;
  const c = new WriteCoalescer(socket);
  const chunk = Buffer.from('aaabbbccc');
  c.forward(chunk.subarray(0, 3));
  c.forward(chunk.subarray(3, 6));
  c.send(Buffer.from('XX'));
  c.forward(chunk.subarray(6, 9));
  c.forward(Buffer.from('ddd')); // other memory
  c.flush();
  c.flush();
  assert.deepEqual(
    writes.map((w) => w.toString()),
    ['aaabbb', 'XX', 'ccc', 'ddd'],
  );
});
