// psql through the sidecar against the real PostgreSQL: scripted and interactive-style sessions,
// wrong tokens, guardrails, COPY, and what the recording says about each.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { listSessions, openStore } from '../../recording/index.ts';
import { testEnv } from '../../test/env/index.ts';
import { psql as psqlRaw } from '../../test/env/postgres.ts';
import { until } from '../../test/testing/until.ts';
import { type Harness, kinds, NO_DROP, startHarness } from './testing/harness.ts';

const env = await testEnv(['postgres']);
const psqlDirect = async (info: typeof env.postgres, sql: string) => (await psqlRaw(info, sql)).trim();

describe('psql through the sidecar', () => {
  let h: Harness;
  before(async () => {
    h = await startHarness(env.postgres, {
      config: {
        guardrails: [
          NO_DROP,
          { name: 'no-mass-delete', match: { sqlClasses: ['deleteWithoutWhere'] }, action: 'block' },
        ],
      },
    });
  });
  after(() => h.close());

  test('a scripted session with \\set and several statements runs and is recorded', async () => {
    const script = [
      '\\set n 3',
      'CREATE TABLE psql_t (id int primary key, name text);',
      "INSERT INTO psql_t SELECT g, 'name-' || g FROM generate_series(1, :n) g;",
      'SELECT count(*) AS c FROM psql_t;',
      "SELECT name FROM psql_t WHERE id = 2; SELECT 'two statements';",
      '',
    ].join('\n');
    const r = await h.psql(['-q', '-A', '-t', '-v', 'ON_ERROR_STOP=1'], {
      token: h.token,
      stdin: script,
    });
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(r.stdout.trim().split('\n'), ['3', 'name-2', 'two statements']);
    const events = await h.waitForSession((evs) =>
      evs.some((e) => e.payload.sql === 'SELECT count(*) AS c FROM psql_t;'),
    );
    const queries = kinds(events, 'pg.query').map((e) => e.payload.sql);
    assert.deepEqual(queries, [
      'CREATE TABLE psql_t (id int primary key, name text);',
      "INSERT INTO psql_t SELECT g, 'name-' || g FROM generate_series(1, 3) g;",
      'SELECT count(*) AS c FROM psql_t;',
      // psql sends each statement of a line as its own Query
      'SELECT name FROM psql_t WHERE id = 2;',
      "SELECT 'two statements';",
    ]);
    const results = kinds(events, 'pg.result').map((e) => e.payload.commandTag);
    assert.deepEqual(results, ['CREATE TABLE', 'INSERT 0 3', 'SELECT 1', 'SELECT 1', 'SELECT 1']);
    const count = kinds(events, 'pg.result')[2]!;
    assert.deepEqual(count.payload.columns, ['c']);
    assert.deepEqual(count.payload.rowsSample, [['3']]);
    const start = kinds(events, 'pg.startup')[0]!;
    assert.equal(start.payload.user, 'agent');
  });

  test('psql -c with two statements is one Query with two results', async () => {
    const r = await h.psql(['-q', '-A', '-t', '-c', "SELECT 'multi-1'; SELECT 'multi-2', 2"], {
      token: h.token,
    });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.trim(), 'multi-1\nmulti-2|2');
    const events = await h.waitForSession((evs) =>
      evs.some((e) => e.payload.sql === "SELECT 'multi-1'; SELECT 'multi-2', 2"),
    );
    assert.equal(kinds(events, 'pg.query').length, 1);
    assert.deepEqual(
      kinds(events, 'pg.result').map((e) => e.payload.rowsSample),
      [[['multi-1']], [['multi-2', '2']]],
    );
  });

  test('a wrong token gets a clear error and is recorded as identity.denied', async () => {
    const r = await h.psql(['-c', 'SELECT 1'], { token: 'not-a-token' });
    assert.notEqual(r.code, 0);
    assert.match(
      r.stderr,
      /chaperone: authentication failed: token is not a JWT \(expected three dot-separated parts\)/,
    );
    await h.waitForSession((evs) =>
      evs.some((e) => e.kind === 'identity.denied' && e.payload.code === 'malformed'),
    );
  });

  test('DROP TABLE is blocked before it reaches the database', async () => {
    await psqlDirect(env.postgres, 'CREATE TABLE keep_me (id int); INSERT INTO keep_me VALUES (1)');
    const r = await h.psql(['-c', 'DROP TABLE keep_me'], { token: h.token });
    assert.notEqual(r.code, 0);
    assert.match(
      r.stderr,
      /ERROR: {2}chaperone: statement blocked by rule no-drop: DROP TABLE is not allowed/,
    );
    assert.equal(await psqlDirect(env.postgres, 'SELECT count(*) FROM keep_me'), '1');
    const r2 = await h.psql(['-c', 'DELETE FROM keep_me'], { token: h.token });
    assert.match(r2.stderr, /chaperone: statement blocked by rule no-mass-delete/);
    assert.equal(await psqlDirect(env.postgres, 'SELECT count(*) FROM keep_me'), '1');
    const events = await h.waitForSession((evs) =>
      evs.some((e) => e.kind === 'policy.blocked' && e.payload.rule === 'no-mass-delete'),
    );
    assert.equal(kinds(events, 'pg.query').length, 0, 'a blocked statement is not an executed one');
    const err = kinds(events, 'pg.error')[0]!;
    assert.equal(err.payload.sqlstate, '42501');
    // The auditor's index: the refused statement is found by its text, and counted as not run.
    const indexed = await until('the blocked session in the index', async () => {
      for await (const s of listSessions(openStore(h.storeUrl))) {
        if (s.commands.sample.includes('DELETE FROM keep_me')) return s;
      }
      return undefined;
    });
    assert.equal(indexed.commands.total, 0);
  });

  test('a blocked statement inside a transaction aborts it, as a real error would', async () => {
    await psqlDirect(env.postgres, 'CREATE TABLE tx_t (id int)');
    const script = [
      'BEGIN;',
      'INSERT INTO tx_t VALUES (1);',
      'DELETE FROM tx_t;',
      'INSERT INTO tx_t VALUES (2);',
      'COMMIT;',
      '',
    ].join('\n');
    const r = await h.psql([], { token: h.token, stdin: script });
    assert.match(r.stderr, /chaperone: statement blocked by rule no-mass-delete/);
    assert.match(r.stderr, /current transaction is aborted/);
    assert.match(r.stdout, /ROLLBACK/);
    assert.equal(await psqlDirect(env.postgres, 'SELECT count(*) FROM tx_t'), '0');
  });

  test('COPY in and out', async () => {
    await psqlDirect(env.postgres, 'CREATE TABLE copy_t (id int, note text)');
    const data = Array.from({ length: 1000 }, (_, i) => `${i}\tnote ${i}`).join('\n');
    const r = await h.psql(['-v', 'ON_ERROR_STOP=1', '-c', 'COPY copy_t FROM STDIN'], {
      token: h.token,
      stdin: `${data}\n\\.\n`,
    });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(await psqlDirect(env.postgres, 'SELECT count(*) FROM copy_t'), '1000');
    const out = await h.psql(
      ['-v', 'ON_ERROR_STOP=1', '-c', 'COPY (SELECT * FROM copy_t ORDER BY id) TO STDOUT'],
      { token: h.token },
    );
    assert.equal(out.code, 0, out.stderr);
    assert.equal(out.stdout.trim(), data);
    const events = await h.waitForSession((evs) =>
      evs.some((e) => e.kind === 'pg.copy' && e.payload.direction === 'out'),
    );
    const copy = kinds(events, 'pg.copy')[0]!;
    assert.equal(copy.payload.rows, 1000);
    assert.equal(copy.payload.bytes, Buffer.byteLength(`${data}\n`));
    const inEvents = await h.waitForSession((evs) =>
      evs.some((e) => e.kind === 'pg.copy' && e.payload.direction === 'in'),
    );
    assert.equal(kinds(inEvents, 'pg.copy')[0]!.payload.rows, 1000);
  });
});
