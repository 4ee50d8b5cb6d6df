// The agent-side parser: valid streams in any chunking, clear errors for malformed frames, and a
// bounded fuzz run (random bytes and mutations of valid streams) that must never throw or spin.
// Random choices come from one seed per run, printed on failure (CHAPERONE_SEED=<seed> reruns it).
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, test } from 'node:test';
import { serialize } from 'pg-protocol/dist/serializer.js';
import { type Random, withSeed } from '../../test/testing/random.ts';
import {
  decodeBind,
  decodeClose,
  decodeDescribe,
  decodeExecute,
  decodeParse,
  decodePassword,
  decodeQuery,
  type FrontendMessage,
  FrontendParser,
  ProtocolError,
} from './frontend.ts';
import { startupMessage } from './protocol.ts';

function drain(p: FrontendParser): { messages: FrontendMessage[]; error?: string } {
  const messages: FrontendMessage[] = [];
  for (;;) {
    const m = p.next();
    if (m === undefined) return { messages };
    if (m instanceof ProtocolError) return { messages, error: m.message };
    messages.push(m);
  }
}

const validStream = () =>
  Buffer.concat([
    serialize.query('SELECT 1'),
    serialize.parse({ name: 's1', text: 'SELECT $1::int', types: [23] }),
    serialize.bind({ portal: 'p1', statement: 's1', values: ['42', Buffer.from([1, 2, 3])] }),
    serialize.describe({ type: 'P', name: 'p1' }),
    serialize.execute({ portal: 'p1', rows: 10 }),
    serialize.close({ type: 'S', name: 's1' }),
    serialize.flush(),
    serialize.sync(),
    serialize.copyData(Buffer.from('a\tb\n')),
    serialize.copyDone(),
    serialize.end(),
  ]);

describe('FrontendParser', () => {
  test('parses a valid stream the same way in any chunking', () =>
    withSeed(({ random }) => {
      const stream = validStream();
      const whole = new FrontendParser();
      whole.push(stream);
      const expected = drain(whole);
      assert.equal(expected.error, undefined);
      assert.equal(expected.messages.map((m) => String.fromCharCode(m.type)).join(''), 'QPBDECHSdcX');
      for (let trial = 0; trial < 50; trial++) {
        const p = new FrontendParser();
        const got: FrontendMessage[] = [];
        let at = 0;
        while (at < stream.length) {
          const n = 1 + Math.floor(random() * 20);
          p.push(stream.subarray(at, at + n));
          at += n;
          got.push(...drain(p).messages);
        }
        assert.deepEqual(
          got.map((m) => m.raw.toString('hex')),
          expected.messages.map((m) => m.raw.toString('hex')),
        );
      }
    }));

  test('decodes the fields of each message kind', () => {
    const p = new FrontendParser();
    p.push(validStream());
    const [q, parse, bind, describe, execute, close] = drain(p).messages;
    assert.equal(decodeQuery(q!.raw), 'SELECT 1');
    assert.deepEqual(decodeParse(parse!.raw), { name: 's1', sql: 'SELECT $1::int', paramTypes: [23] });
    const b = decodeBind(bind!.raw);
    assert.ok(!(b instanceof ProtocolError));
    assert.equal(b.portal, 'p1');
    assert.equal(b.statement, 's1');
    assert.deepEqual(
      b.params.map((v) => v?.toString('hex')),
      [Buffer.from('42').toString('hex'), '010203'],
    );
    assert.deepEqual(b.paramFormats, [0, 1]);
    assert.deepEqual(decodeDescribe(describe!.raw), { kind: 'P', name: 'p1' });
    assert.deepEqual(decodeExecute(execute!.raw), { portal: 'p1', maxRows: 10 });
    assert.deepEqual(decodeClose(close!.raw), { kind: 'S', name: 's1' });
    assert.equal(decodePassword(serialize.password('tok')), 'tok');
  });

  test('startup packets: SSLRequest, CancelRequest, StartupMessage', () => {
    const p = new FrontendParser();
    p.push(serialize.requestSsl());
    p.push(startupMessage({ user: 'agent', database: 'db', _pq_opt: 'x' }));
    assert.deepEqual(p.nextStartup(), { kind: 'ssl' });
    const s = p.nextStartup();
    assert.ok(s && !(s instanceof ProtocolError) && s.kind === 'startup');
    assert.deepEqual(s.params, { user: 'agent', database: 'db', _pq_opt: 'x' });
    const c = new FrontendParser();
    c.push(serialize.cancel(1234, -5));
    assert.deepEqual(c.nextStartup(), { kind: 'cancel', pid: 1234, secret: -5 });
  });

  const malformed: [string, Buffer, RegExp][] = [
    ['negative length', Buffer.from([0x51, 0xff, 0xff, 0xff, 0xff]), /invalid message length -1/],
    ['length below 4', Buffer.from([0x51, 0, 0, 0, 2]), /invalid message length 2/],
    ['huge length', Buffer.from([0x51, 0x7f, 0xff, 0xff, 0xff]), /exceeds the limit/],
    ['garbage type', Buffer.from('GET / HTTP/1.1\r\n'), /unknown message type 0x47/],
    ['Sync with a body', Buffer.from([0x53, 0, 0, 0, 5, 0]), /invalid length 5 for message 'S'/],
  ];
  for (const [name, bytes, error] of malformed) {
    test(`rejects ${name}`, () => {
      const p = new FrontendParser(1024 * 1024);
      p.push(bytes);
      const r = drain(p);
      assert.match(r.error ?? '', error);
      // sticky: nothing more comes out
      p.push(serialize.sync());
      assert.ok(p.next() instanceof ProtocolError);
    });
  }

  test('a truncated frame waits for more bytes and is reported as pending', () => {
    const p = new FrontendParser();
    const q = serialize.query('SELECT 42');
    p.push(q.subarray(0, q.length - 3));
    assert.equal(p.next(), undefined);
    assert.equal(p.pendingBytes, q.length - 3);
  });

  test('a large message in many chunks is joined once', () => {
    const p = new FrontendParser();
    const data = serialize.copyData(randomBytes(4 * 1024 * 1024));
    for (let at = 0; at < data.length; at += 1000) {
      p.push(data.subarray(at, at + 1000));
      if (at + 1000 < data.length) assert.equal(p.next(), undefined);
    }
    const m = p.next();
    assert.ok(m && !(m instanceof ProtocolError));
    assert.equal(m.raw.length, data.length);
  });

  test('malformed bodies of well-framed messages decode to errors, not exceptions', () => {
    const frame = (type: string, body: Buffer) => {
      const b = Buffer.alloc(5 + body.length);
      b[0] = type.charCodeAt(0);
      b.writeInt32BE(4 + body.length, 1);
      body.copy(b, 5);
      return b;
    };
    assert.ok(decodeQuery(frame('Q', Buffer.from('no terminator'))) instanceof ProtocolError);
    assert.ok(decodeParse(frame('P', Buffer.from('s\0SELECT\0\xff\xff', 'latin1'))) instanceof ProtocolError);
    assert.ok(
      decodeBind(frame('B', Buffer.from([0, 0, 0, 1, 0, 0, 0, 0x7f, 0xff, 0xff]))) instanceof ProtocolError,
    );
    assert.ok(decodeDescribe(frame('D', Buffer.from('X\0'))) instanceof ProtocolError);
    assert.ok(decodeExecute(frame('E', Buffer.from('p\0\0'))) instanceof ProtocolError);
  });
});

describe('FrontendParser fuzz', () => {
  const decoders = [
    decodeQuery,
    decodeParse,
    decodeBind,
    decodeDescribe,
    decodeClose,
    decodeExecute,
    decodePassword,
  ];

  function exercise(random: Random, bytes: Buffer, startup: boolean): void {
    const p = new FrontendParser(64 * 1024);
    let at = 0;
    let steps = 0;
    while (at < bytes.length) {
      const n = 1 + Math.floor(random() * 64);
      p.push(bytes.subarray(at, at + n));
      at += n;
      for (;;) {
        // each call either consumes bytes or stops: bounded by the input length
        assert.ok(++steps <= bytes.length + 10, 'parser made no progress');
        const m = startup && steps === 1 ? p.nextStartup() : p.next();
        if (m === undefined || m instanceof ProtocolError) break;
        if ('raw' in m) for (const d of decoders) d(m.raw);
      }
    }
  }

  test('random bytes never make it throw or spin', () =>
    withSeed(({ random, int, bytes }) => {
      for (let i = 0; i < 3000; i++) exercise(random, bytes(int(1, 513)), i % 2 === 0);
    }));

  test('mutations of valid streams never make it throw or spin', () =>
    withSeed(({ random }) => {
      const base = validStream();
      for (let i = 0; i < 3000; i++) {
        const b = Buffer.from(base);
        const flips = 1 + Math.floor(random() * 8);
        for (let f = 0; f < flips; f++) {
          const pos = Math.floor(random() * b.length);
          const r = random();
          if (r < 0.6) b[pos] = Math.floor(random() * 256);
          else if (r < 0.8) b[pos] = 0;
          else b[pos] = 0xff;
        }
        const cut = random() < 0.3 ? Math.floor(random() * b.length) : b.length;
        exercise(random, b.subarray(0, cut), false);
      }
    }));
});
