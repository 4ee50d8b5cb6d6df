// Hostile and concurrent traffic: malformed frames end only their own session; 20 concurrent
// sessions of 50 statements each are all executed and all recorded, exactly once.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import pg from 'pg';
import { serialize } from 'pg-protocol/dist/serializer.js';
import { testEnv } from '../../test/env/index.ts';
import { psql as psqlRaw } from '../../test/env/postgres.ts';
import { until } from '../../test/testing/until.ts';
import { B, errorFields, startupMessage } from './protocol.ts';
import { RawClient } from './raw-client.ts';
import { runConcurrentSessions } from './testing/concurrent-sessions.ts';
import { type Harness, kinds, startHarness } from './testing/harness.ts';

const env = await testEnv(['postgres']);
const direct = async (sql: string) => (await psqlRaw(env.postgres, sql)).trim();

describe('malformed frames', () => {
  let h: Harness;
  before(async () => {
    h = await startHarness(env.postgres, { limits: { maxMessageBytes: 1024 * 1024 } });
  });
  after(() => h.close());

  const cases: [string, Buffer, RegExp][] = [
    ['bad length', Buffer.from([0x51, 0, 0, 0, 1]), /invalid message length 1/],
    ['huge length', Buffer.from([0x51, 0x40, 0, 0, 0, 0x53]), /exceeds the limit of 1048576 bytes/],
    [
      'garbage',
      Buffer.from('\x00\x01garbage that is no protocol at all', 'latin1'),
      /unknown message type 0x00/,
    ],
    ['negative length', Buffer.from([0x50, 0x80, 0, 0, 0]), /invalid message length/],
    [
      'bad body',
      Buffer.concat([Buffer.from([0x42, 0, 0, 0, 8]), Buffer.from([0, 0, 0xff, 0xff])]),
      /malformed Bind message/,
    ],
  ];

  test('each closes its own session with 08P01 and a log line; a concurrent session keeps working', async () => {
    const healthy = new pg.Client(h.clientConfig());
    await healthy.connect();
    const busy = (async () => {
      // a steady stream of statements while the bad sessions come and go
      for (let i = 0; i < 200; i++)
        assert.equal((await healthy.query('SELECT $1::int AS i', [i])).rows[0].i, i);
    })();
    for (const [name, bytes, reason] of cases) {
      const c = await RawClient.login(h.port, h.token);
      c.send(bytes);
      const frames = await c.untilClosed();
      const err = frames.find((f) => f.type === B.error);
      assert.ok(err, `${name}: an ErrorResponse before the close`);
      const fields = errorFields(err.raw);
      assert.equal(fields.C, '08P01', name);
      assert.match(fields.M ?? '', reason, name);
      assert.ok(
        h.logs.some(
          (l) => l.msg === 'protocol violation from agent; closing session' && reason.test(String(l.reason)),
        ),
        `${name}: logged`,
      );
    }
    // garbage instead of a startup packet, and a frame cut short by the client going away
    const g = await RawClient.open(h.port);
    g.send(Buffer.from([0, 0, 0, 3, 1, 2, 3]));
    const gFrames = await g.untilClosed();
    assert.match(
      errorFields(gFrames.find((f) => f.type === B.error)!.raw).M ?? '',
      /invalid startup packet length 3/,
    );
    const t = await RawClient.login(h.port, h.token);
    t.send(serialize.query('SELECT 1').subarray(0, 7));
    await new Promise((r) => setTimeout(r, 100));
    t.socket.end();
    await t.untilClosed();
    await busy;
    assert.equal((await healthy.query('SELECT 7 AS seven')).rows[0].seven, 7);
    await healthy.end();
    assert.ok(
      await waitForLog(
        h,
        (l) =>
          l.msg === 'agent closed the connection inside a message (truncated frame)' && l.pendingBytes === 7,
      ),
      'truncated frame logged',
    );
    // a bad session's partial statement never reached the database
    const recorded = await h.waitForSession((evs) =>
      evs.some((e) => e.kind === 'pg.error' && /Bind/.test(String(e.payload.message))),
    );
    assert.equal(kinds(recorded, 'pg.query').length, 0);
  });

  test('pipelined statements sent in one write are recorded in order, each before its results', async () => {
    const c = await RawClient.login(h.port, h.token);
    const sqls = ['SELECT 1 AS p1', 'SELECT 2 AS p2; SELECT 3 AS p3', 'SELECT 4 AS p4'];
    c.send(Buffer.concat(sqls.map((sql) => serialize.query(sql))));
    let ready = 0;
    await c.until((f) => f.type === B.readyForQuery && ++ready === sqls.length);
    c.send(serialize.end());
    await c.untilClosed();
    const events = await h.waitForSession(
      (evs) => evs.some((e) => e.payload.sql === 'SELECT 4 AS p4') && evs.at(-1)?.kind === 'session.end',
    );
    const order = events
      .filter((e) => e.kind === 'pg.query' || e.kind === 'pg.result')
      .map((e) => (e.kind === 'pg.query' ? `query ${e.payload.sql}` : `result ${e.payload.columns}`));
    const at = (line: string) => {
      const i = order.indexOf(line);
      assert.ok(i >= 0, `${line} in ${order.join(' | ')}`);
      return i;
    };
    // Each result carries its own columns (its payload was not changed by what followed it).
    const expected: [string, string[]][] = [
      [sqls[0]!, ['p1']],
      [sqls[1]!, ['p2', 'p3']],
      [sqls[2]!, ['p4']],
    ];
    let lastQuery = -1;
    let lastResult = -1;
    for (const [sql, columns] of expected) {
      const q = at(`query ${sql}`);
      assert.ok(q > lastQuery, `${sql} recorded after the statements sent before it`);
      lastQuery = q;
      for (const column of columns) {
        const r = at(`result ${column}`);
        assert.ok(r > q, `the result of ${column} after its statement`);
        assert.ok(r > lastResult, `the result of ${column} after the results before it`);
        lastResult = r;
      }
    }
    assert.equal(order.length, 7);
  });

  test('a startup packet with a wrong protocol version is refused clearly', async () => {
    const c = await RawClient.open(h.port);
    const bad = startupMessage({ user: 'x' });
    bad.writeInt32BE(2 << 16, 4);
    c.send(bad);
    const frames = await c.untilClosed();
    assert.match(errorFields(frames[0]!.raw).M ?? '', /unsupported frontend protocol 2\.0/);
  });
});

async function waitForLog(h: Harness, match: (l: Record<string, unknown>) => boolean): Promise<boolean> {
  return until('a log line', () => h.logs.some(match));
}

// Correctness at a size the suite can afford; the load (200 sessions x 500 statements) is
// bench/concurrent-sessions.bench.ts.
describe('20 concurrent sessions x 50 statements, recorded to MinIO', () => {
  let h: Harness;
  before(async () => {
    h = await startHarness(env.postgres, { minio: (await testEnv(['minio'])).minio });
    await direct('CREATE TABLE conc_t (session int, n int)');
  });
  after(() => h.close());

  test('every executed statement is recorded exactly once', async () => {
    assert.match(h.storeUrl, /^s3:\/\//);
    await runConcurrentSessions(h, {
      sessions: 20,
      statements: 50,
      table: 'conc_t',
      count: () => direct('SELECT count(*) FROM conc_t'),
    });
  });
});
