import assert from 'node:assert/strict';
import { connect, createServer, type Socket } from 'node:net';
import { test } from 'node:test';
import { BackendFramer } from './backend.ts';
import { adoptWithDirectReads, connectWithDirectReads, directReadsOf } from './direct-reads.ts';

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

test('an accepted socket adopted for direct reads emits owned chunks, pauses, ends, and closes its server', async () => {
  const adopted: Socket[] = [];
  const server = createServer({ pauseOnConnect: true }, (accepted) => {
    const socket = adoptWithDirectReads(accepted);
    assert.notEqual(socket, accepted, 'the handle moved to a socket with direct reads');
    adopted.push(socket);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  const agent = connect(port, '127.0.0.1');
  await new Promise((resolve) => agent.once('connect', resolve));
  agent.write('early'); // sent before anyone listens: read only once a 'data' listener resumes it
  await new Promise<void>((resolve) => {
    const poll = () => (adopted.length > 0 ? resolve() : setImmediate(poll));
    poll();
  });
  const socket = adopted[0]!;
  const chunks: Buffer[] = [];
  let next: (() => void) | undefined;
  socket.on('data', (chunk: Buffer) => {
    chunks.push(chunk);
    next?.();
  });
  const received = () => new Promise<void>((resolve) => (next = resolve));
  await received();
  agent.write('one');
  await received();
  assert.deepEqual(
    chunks.map((c) => c.toString()),
    ['early', 'one'],
  );
  assert.equal(chunks[0]!.toString(), 'early', 'an earlier chunk keeps its bytes after later reads');

  // Paused: nothing is read until resumed.
  const roundTrip = async () => {
    const echoed = new Promise<Buffer>((resolve) => agent.once('data', resolve));
    socket.write('ping');
    assert.equal((await echoed).toString(), 'ping');
  };
  socket.pause();
  agent.write('two');
  // Two round trips through the same event loop: an unpaused socket would have read 'two' by now.
  await roundTrip();
  await roundTrip();
  assert.equal(chunks.length, 2, 'a paused socket emits nothing');
  const resumed = received();
  socket.resume();
  await resumed;
  assert.equal(chunks[2]!.toString(), 'two');

  // The server's close waits for the adopted socket, and the socket sees the agent's end.
  const ended = new Promise((resolve) => socket.once('end', resolve));
  const closed = new Promise((resolve) => server.close(resolve));
  let serverClosed = false;
  void closed.then(() => (serverClosed = true));
  await roundTrip();
  assert.equal(serverClosed, false, 'server.close() waits for the adopted connection');
  agent.end();
  await ended;
  socket.end();
  await closed;
});
