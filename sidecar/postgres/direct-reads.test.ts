import assert from 'node:assert/strict';
import { createServer, type Socket } from 'node:net';
import { test } from 'node:test';
import { BackendFramer } from './backend.ts';
import { connectWithDirectReads, directReadsOf } from './direct-reads.ts';

test('reads are copied into data events until a sink takes over; pin moves to a fresh buffer', async () => {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  const accepted = new Promise<Socket>((resolve) => server.once('connection', resolve));
  const socket = connectWithDirectReads('127.0.0.1', port);
  const peer = await accepted;
  const reads = directReadsOf(socket)!;
  assert.ok(reads);
  const receive = () => new Promise<Buffer>((resolve) => socket.once('data', resolve));
  peer.write('one');
  const first = await receive();
  peer.write('two');
  await receive();
  assert.equal(first.toString(), 'one', 'a data event owns its bytes');

  const views: Buffer[] = [];
  const texts: string[] = [];
  let next: (() => void) | undefined;
  reads.setSink((view) => {
    views.push(view);
    texts.push(view.toString());
    if (views.length === 1) reads.pin();
    next?.();
  });
  const sunk = () => new Promise<void>((resolve) => (next = resolve));
  for (const word of ['three', 'four', 'five']) {
    peer.write(word);
    await sunk();
  }
  assert.deepEqual(texts, ['three', 'four', 'five']);
  assert.equal(views[0]!.toString(), 'three', 'the pinned view keeps its bytes');
  assert.notEqual(views[0]!.buffer, views[1]!.buffer, 'a pinned buffer is not read into again');
  assert.equal(views[1]!.buffer, views[2]!.buffer, 'an unpinned buffer is reused');
  socket.destroy();
  peer.destroy();
  await new Promise((resolve) => server.close(resolve));
});

test('retain copies a partial message out of a reused chunk', () => {
  const framer = new BackendFramer();
  const chunk = Buffer.from([0x5a, 0, 0, 0, 5, 0x49, 0x43, 0, 0]);
  framer.push(chunk);
  assert.equal(framer.next()?.type, 0x5a);
  assert.equal(framer.next(), undefined);
  framer.retain();
  chunk.fill(0xff);
  framer.push(Buffer.from([0, 0x0d, 0x53, 0x45, 0x4c, 0x45, 0x43, 0x54, 0x20, 0x31, 0]));
  const f = framer.next();
  assert.equal(f?.type, 0x43);
  assert.equal(f?.raw.toString('latin1', 5, 13), 'SELECT 1');
});
