// The shared listener life on a plain TCP server: bind and report the bound port, refuse a port in
// use, track sessions until they are done, stop accepting without ending them, and drain (wait,
// then terminate what is still open at the deadline).
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { describe, test } from 'node:test';
import { pino } from 'pino';
import { until } from '../../test/testing/until.ts';
import { GatewayListener, type ListenerRuntime } from './gateway-listener.ts';

/** A session that ends when its agent hangs up or when terminated. */
class EchoSession {
  readonly done: Promise<void>;
  terminatedWith: string | undefined;
  private readonly socket: Socket;

  constructor(socket: Socket) {
    this.socket = socket;
    this.done = once(socket, 'close').then(() => undefined);
    socket.on('error', () => undefined);
    socket.on('data', (d) => socket.write(d));
  }

  async terminate(reason: string): Promise<void> {
    this.terminatedWith = reason;
    this.socket.destroy();
    await this.done;
  }
}

class EchoGateway extends GatewayListener<ListenerRuntime, EchoSession, Server> {
  readonly accepted: EchoSession[] = [];
  readonly logs: { msg: string }[] = [];

  constructor(listenPort: number) {
    const logs: { msg: string }[] = [];
    const logger = pino({ level: 'info' }, { write: (line: string) => logs.push(JSON.parse(line)) });
    super({ target: { name: 'echo', protocol: 'test', listenPort } }, createServer(), {
      label: 'echo',
      logger,
    });
    this.logs = logs;
    this.server.on('connection', (socket) => {
      const session = new EchoSession(socket);
      this.accepted.push(session);
      this.track(session);
    });
  }
}

async function agent(port: number): Promise<Socket> {
  const socket = connect(port, '127.0.0.1');
  await once(socket, 'connect');
  socket.on('error', () => undefined);
  return socket;
}

describe('GatewayListener', () => {
  test('binds, reports the bound port, and counts sessions until they are done', async (t) => {
    const g = new EchoGateway(0);
    t.after(() => g.drain(0, 'test over'));
    assert.equal(g.isListening, false);
    await g.listen('127.0.0.1');
    assert.equal(g.isListening, true);
    assert.equal(g.target, 'echo');
    assert.equal(g.listenPort, 0);
    assert.notEqual(g.port, 0);
    assert.ok(g.logs.some((l) => l.msg === 'echo listener bound'));
    const a = await agent(g.port);
    const b = await agent(g.port);
    await until('two sessions tracked', () => g.activeSessions === 2);
    a.end();
    await until('the ended session is dropped', () => g.activeSessions === 1);
    b.destroy();
    await until('no session left', () => g.activeSessions === 0);
  });

  test('a port in use fails listen and leaves the listener not listening', async (t) => {
    const first = new EchoGateway(0);
    await first.listen('127.0.0.1');
    t.after(() => first.drain(0, 'test over'));
    const second = new EchoGateway(first.port);
    await assert.rejects(second.listen('127.0.0.1'), { code: 'EADDRINUSE' });
    assert.equal(second.isListening, false);
    await second.stopAccepting();
  });

  test('stopAccepting refuses new agents and lets open sessions go on', async () => {
    const g = new EchoGateway(0);
    await g.listen('127.0.0.1');
    const port = g.port;
    const open = await agent(port);
    await until('session tracked', () => g.activeSessions === 1);
    const closed = g.stopAccepting();
    assert.equal(g.isListening, false);
    await assert.rejects(agent(port), { code: 'ECONNREFUSED' });
    open.write('still here');
    const [echo] = await once(open, 'data');
    assert.equal(String(echo), 'still here');
    open.end();
    await closed;
    await until('the ended session is dropped', () => g.activeSessions === 0);
    await g.stopAccepting();
  });

  test('drain waits for sessions that end in time and terminates the rest at the deadline', async () => {
    const g = new EchoGateway(0);
    await g.listen('127.0.0.1');
    const quick = await agent(g.port);
    await agent(g.port);
    await until('two sessions tracked', () => g.activeSessions === 2);
    const [quickSession, slowSession] = g.accepted;
    setImmediate(() => quick.end());
    await g.drain(2000, 'sidecar shutting down');
    assert.equal(g.activeSessions, 0);
    assert.equal(quickSession?.terminatedWith, undefined, 'a session that ended in time is not terminated');
    assert.equal(slowSession?.terminatedWith, 'sidecar shutting down');
    assert.ok(g.logs.some((l) => l.msg === 'terminating echo sessions still open at the deadline'));
  });

  test('drain with every session ending in time terminates none', async () => {
    const g = new EchoGateway(0);
    await g.listen('127.0.0.1');
    const a = await agent(g.port);
    await until('session tracked', () => g.activeSessions === 1);
    setImmediate(() => a.end());
    await g.drain(10_000, 'unused');
    assert.equal(g.accepted[0]?.terminatedWith, undefined);
    assert.ok(!g.logs.some((l) => l.msg.startsWith('terminating')));
  });
});
