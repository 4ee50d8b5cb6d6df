// node-postgres and wire-level clients through the sidecar: the extended protocol (prepared
// statements, binary parameters, pipelined batches), masking, approvals and cancellation.
import assert from 'node:assert/strict';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import pg from 'pg';
import { serialize } from 'pg-protocol/dist/serializer.js';
import { testEnv } from '../../test/env/index.ts';
import { psql as psqlRaw } from '../../test/env/postgres.ts';
import { until } from '../../test/testing/until.ts';
import { B, errorFields } from './protocol.ts';
import { RawClient, typesOf } from './raw-client.ts';
import { type Harness, kinds, NO_DROP, startHarness } from './testing/harness.ts';

const env = await testEnv(['postgres']);
const direct = async (sql: string) => (await psqlRaw(env.postgres, sql)).trim();
const CARD = '4111 1111 1111 1111';

const waitFor = <T>(what: string, check: () => Promise<T | undefined>) => until(what, check);

describe('node-postgres through the sidecar', () => {
  let h: Harness;
  before(async () => {
    h = await startHarness(env.postgres, {
      config: {
        guardrails: [
          NO_DROP,
          { name: 'approve-truncate', match: { sqlClasses: ['truncate'] }, action: 'requireApproval' },
        ],
        masking: {
          columns: [{ pattern: '^ssn$', strategy: 'redact' }],
          detectors: [{ type: 'creditCard', strategy: 'redact' }],
        },
        approvals: { backend: 'local', timeoutSeconds: 3 },
      },
    });
    // approvals.localDir is filled in by the harness default; keep it
    await direct(
      `CREATE TABLE customers (id int primary key, name text, ssn text, card text);
       INSERT INTO customers VALUES (1, 'Ada', '123-45-6789', '${CARD}'), (2, 'Bob', '987-65-4321', 'none')`,
    );
  });
  after(() => h.close());

  test('prepared statements with text and binary parameters', async () => {
    const client = new pg.Client(h.clientConfig());
    await client.connect();
    try {
      await client.query('CREATE TABLE blobs (id int, data bytea, label text)');
      const payload = Buffer.from([0, 1, 2, 255, 254]);
      for (let i = 0; i < 3; i++) {
        await client.query({
          name: 'ins',
          text: 'INSERT INTO blobs VALUES ($1, $2, $3)',
          values: [i, payload, `label-${i}`],
        });
      }
      const r = await client.query({
        name: 'sel',
        text: 'SELECT id, data, label FROM blobs WHERE id >= $1 ORDER BY id',
        values: [1],
      });
      assert.deepEqual(
        r.rows.map((row) => [row.id, (row.data as Buffer).toString('hex'), row.label]),
        [
          [1, '000102fffe', 'label-1'],
          [2, '000102fffe', 'label-2'],
        ],
      );
      const bin = await client.query({
        text: 'SELECT $1::int4 + 1 AS n',
        values: [41],
        binary: true,
      } as pg.QueryConfig);
      assert.equal(bin.rows[0].n, 42);
    } finally {
      await client.end();
    }
    const events = await h.waitForSession((evs) =>
      evs.some((e) => e.payload.sql === 'SELECT $1::int4 + 1 AS n' && e.kind === 'pg.query'),
    );
    const inserts = kinds(events, 'pg.query').filter(
      (e) => e.payload.sql === 'INSERT INTO blobs VALUES ($1, $2, $3)',
    );
    assert.equal(inserts.length, 3, 'each execution of a prepared statement is recorded');
    assert.deepEqual(inserts[2]!.payload.params, [
      '2',
      { base64: Buffer.from([0, 1, 2, 255, 254]).toString('base64') },
      'label-2',
    ]);
    assert.equal(inserts[2]!.payload.statementName, 'ins');
    assert.equal(inserts[2]!.payload.protocol, 'extended');
    const results = kinds(events, 'pg.result').map((e) => e.payload.commandTag);
    assert.deepEqual(results, [
      'CREATE TABLE',
      'INSERT 0 1',
      'INSERT 0 1',
      'INSERT 0 1',
      'SELECT 2',
      'SELECT 1',
    ]);
  });

  test('a masked card number and SSN never reach the client, nor the recording', async () => {
    const client = new pg.Client(h.clientConfig());
    await client.connect();
    try {
      const simple = await client.query('SELECT id, name, ssn, card FROM customers ORDER BY id');
      const prepared = await client.query({
        name: 'cust',
        text: 'SELECT name, ssn, card FROM customers WHERE id = $1',
        values: [1],
      });
      for (const row of [simple.rows[0], prepared.rows[0]]) {
        assert.equal(row.name, 'Ada');
        assert.notEqual(row.card, CARD);
        assert.ok(!String(row.card).includes('4111 1111 1111'), `card leaked: ${row.card}`);
        assert.notEqual(row.ssn, '123-45-6789');
      }
      assert.equal(simple.rows[1].card, 'none', 'values that are not card numbers stay');
    } finally {
      await client.end();
    }
    const events = await h.waitForSession((evs) =>
      evs.some((e) => e.kind === 'policy.masked' && String(e.payload.sql).includes('WHERE id = $1')),
    );
    const text = JSON.stringify(events);
    assert.ok(!text.includes('4111 1111 1111 1111'), 'the recording holds rows as the agent saw them');
    assert.ok(!text.includes('123-45-6789'));
    const masked = kinds(events, 'pg.result').map((e) => e.payload.maskedCells);
    assert.deepEqual(masked, [3, 2]);
  });

  test('DROP through a prepared statement is blocked; the batch is skipped until Sync and rolled back', async () => {
    await direct('CREATE TABLE batch_t (id int)');
    const c = await RawClient.login(h.port, h.token);
    try {
      c.send(
        Buffer.concat([
          serialize.parse({ text: 'INSERT INTO batch_t VALUES (1)' }),
          serialize.bind({}),
          serialize.execute({}),
          serialize.parse({ name: 'dropper', text: 'DROP TABLE batch_t' }),
          serialize.bind({ statement: 'dropper' }),
          serialize.describe({ type: 'P' }),
          serialize.execute({}),
          serialize.sync(),
        ]),
      );
      const frames = await c.until((f) => f.type === B.readyForQuery);
      // ParseComplete, BindComplete, CommandComplete, then our error, then ReadyForQuery (nothing of the skipped messages)
      assert.equal(typesOf(frames), '12CEZ');
      const err = errorFields(frames[3]!.raw);
      assert.equal(err.C, '42501');
      assert.equal(err.M, 'chaperone: statement blocked by rule no-drop: DROP TABLE is not allowed');
      assert.equal(err.W, undefined, 'no PL/pgSQL context leaks into the error');
      assert.equal(
        await direct('SELECT count(*) FROM batch_t'),
        '0',
        'the implicit transaction was rolled back',
      );
      // The session goes on, and the blocked name does not exist (as after a failed Parse): the
      // gateway refuses Bind of a statement it did not see prepared.
      c.send(
        Buffer.concat([serialize.bind({ statement: 'dropper' }), serialize.execute({}), serialize.sync()]),
      );
      const again = await c.until((f) => f.type === B.readyForQuery);
      assert.equal(typesOf(again), 'EZ');
      assert.equal(errorFields(again[0]!.raw).C, '42501');
      assert.match(
        errorFields(again[0]!.raw).M ?? '',
        /rule prepared-statements: prepared statement "dropper"/,
      );
      c.send(serialize.query('SELECT 1'));
      assert.equal(typesOf(await c.until((f) => f.type === B.readyForQuery)), 'TDCZ');
    } finally {
      c.close();
    }
    const client = new pg.Client(h.clientConfig());
    await client.connect();
    try {
      await assert.rejects(
        client.query({ name: 'd2', text: 'DROP TABLE batch_t' }),
        (err: Error & { code?: string }) => {
          assert.equal(err.code, '42501');
          assert.match(err.message, /chaperone: statement blocked by rule no-drop/);
          return true;
        },
      );
      assert.equal((await client.query('SELECT 2 AS two')).rows[0].two, 2);
    } finally {
      await client.end();
    }
    assert.equal(await direct("SELECT to_regclass('batch_t') IS NOT NULL"), 't');
  });

  test('requireApproval waits, then runs after approval; denial and timeout give errors', async () => {
    await direct('CREATE TABLE approve_t (id int); INSERT INTO approve_t VALUES (1), (2)');
    const client = new pg.Client(h.clientConfig());
    await client.connect();
    const approvalsDir = h.approvalsDir;
    const nextRequest = async () => {
      const file = await waitFor('an approval request', async () => {
        const files = (await readdir(approvalsDir)).filter((f) => f.endsWith('.request.json'));
        for (const f of files) {
          const id = f.slice(0, -'.request.json'.length);
          if (!(await readdir(approvalsDir)).includes(`${id}.decision.json`)) return id;
        }
        return undefined;
      });
      const request = JSON.parse(
        await readFile(join(approvalsDir, `${file}.request.json`), 'utf8'),
      ) as Record<string, unknown>;
      assert.equal(request.rule, 'approve-truncate');
      assert.equal(request.subject, 'agent-alice');
      return file;
    };
    const decide = async (decision: Record<string, unknown>, file?: string) => {
      const id = file ?? (await nextRequest());
      await writeFile(join(approvalsDir, `${id}.decision.json`), JSON.stringify(decision));
    };
    try {
      // approved
      const approved = client.query('TRUNCATE approve_t');
      // The request file exists: the statement is held at the decision, not yet sent upstream.
      const pending = await nextRequest();
      assert.equal(await direct('SELECT count(*) FROM approve_t'), '2', 'nothing runs before the decision');
      await decide({ approved: true, approver: 'bob@example.com' }, pending);
      await approved;
      assert.equal(await direct('SELECT count(*) FROM approve_t'), '0');
      // denied
      await direct('INSERT INTO approve_t VALUES (3)');
      const denied = client.query('TRUNCATE approve_t');
      await decide({ approved: false, approver: 'carol@example.com', reason: 'not today' });
      await assert.rejects(
        denied,
        /chaperone: statement denied under approval rule approve-truncate by carol@example.com: not today/,
      );
      // timed out (3 s)
      await assert.rejects(
        client.query('TRUNCATE approve_t'),
        /chaperone: approval for rule approve-truncate timed out/,
      );
      assert.equal(await direct('SELECT count(*) FROM approve_t'), '1');
      assert.equal((await client.query('SELECT 1 AS one')).rows[0].one, 1);
    } finally {
      await client.end();
    }
    const events = await h.waitForSession((evs) => kinds(evs, 'approval.denied').length === 2);
    assert.deepEqual(
      events
        .filter((e) => e.kind.startsWith('approval.'))
        .map((e) => [e.kind, e.payload.approver ?? null, e.payload.timedOut]),
      [
        ['approval.requested', null, undefined],
        ['approval.granted', 'bob@example.com', false],
        ['approval.requested', null, undefined],
        ['approval.denied', 'carol@example.com', false],
        ['approval.requested', null, undefined],
        ['approval.denied', 'chaperone:timeout', true],
      ],
    );
    assert.deepEqual(
      kinds(events, 'pg.query').map((e) => e.payload.sql),
      ['TRUNCATE approve_t', 'SELECT 1 AS one'],
    );
  });

  test('client.cancel stops the upstream query (pg_stat_activity)', async () => {
    const client = new pg.Client(h.clientConfig());
    await client.connect();
    const sql = 'SELECT pg_sleep(30) AS cancel_me_pg';
    try {
      const query = new pg.Query(sql);
      const failed = new Promise<Error>((resolve) => query.on('error', resolve));
      client.query(query);
      const running = `SELECT count(*) FROM pg_stat_activity WHERE query = '${sql}' AND state = 'active'`;
      await waitFor('the query to run upstream', async () =>
        (await direct(running)) === '1' ? true : undefined,
      );
      // pg's Client#cancel (untyped): opens a connection and sends CancelRequest with the session's key
      (new pg.Client(h.clientConfig()) as unknown as { cancel(c: pg.Client, q: pg.Query): void }).cancel(
        client,
        query,
      );
      const err = (await failed) as Error & { code?: string };
      assert.equal(err.code, '57014');
      assert.equal(await direct(running), '0');
      assert.equal((await client.query('SELECT 3 AS three')).rows[0].three, 3, 'the session goes on');
    } finally {
      await client.end();
    }
    const events = await h.waitForSession((evs) => evs.some((e) => e.kind === 'pg.cancel'));
    const err = kinds(events, 'pg.error').find((e) => e.payload.sqlstate === '57014');
    assert.ok(err, 'the cancelled statement is recorded with its error');
  });

  test('psql + SIGINT cancels the upstream query', async () => {
    const { spawn } = await import('node:child_process');
    const sql = 'SELECT pg_sleep(30) AS cancel_me_psql';
    const child = spawn(
      join(env.postgres.binDir, 'psql'),
      ['-X', '-h', '127.0.0.1', '-p', String(h.port), '-U', 'agent', '-d', 'postgres', '-c', sql],
      {
        env: { PATH: process.env.PATH, PGPASSWORD: h.token },
      },
    );
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    const exited = new Promise<number | null>((resolve) => child.on('close', resolve));
    const running = `SELECT count(*) FROM pg_stat_activity WHERE query = '${sql}' AND state = 'active'`;
    await waitFor('the query to run upstream', async () =>
      (await direct(running)) === '1' ? true : undefined,
    );
    child.kill('SIGINT');
    assert.notEqual(await exited, 0);
    assert.match(stderr, /canceling statement due to user request/);
    assert.equal(await direct(running), '0');
  });
});

describe('masking.keepOriginals', () => {
  let h: Harness;
  before(async () => {
    h = await startHarness(env.postgres, {
      config: {
        masking: {
          columns: [{ pattern: '^ssn$', strategy: 'redact' }],
          detectors: [{ type: 'creditCard', strategy: 'redact' }],
          keepOriginals: true,
        },
      },
    });
    await direct(
      `CREATE TABLE keep_originals (id int primary key, ssn text, card text);
       INSERT INTO keep_originals VALUES (1, '123-45-6789', '${CARD}'), (2, NULL, 'none')`,
    );
  });
  after(() => h.close());

  test('the agent still gets masked rows; the recording also holds the originals of masked rows', async () => {
    const client = new pg.Client(h.clientConfig());
    await client.connect();
    try {
      const r = await client.query('SELECT id, ssn, card FROM keep_originals ORDER BY id');
      assert.equal(r.rows[0].card, '****');
      assert.equal(r.rows[0].ssn, '****');
      assert.equal(r.rows[1].card, 'none');
    } finally {
      await client.end();
    }
    const events = await h.waitForSession((evs) =>
      evs.some((e) => e.kind === 'pg.result' && e.payload.unmaskedRowsSample !== undefined),
    );
    const result = kinds(events, 'pg.result').find((e) => e.payload.unmaskedRowsSample !== undefined)!;
    assert.deepEqual(result.payload.rowsSample, [
      ['1', '****', '****'],
      ['2', null, 'none'],
    ]);
    // Only the row that had masked cells is kept unmasked, pointing at its place in rowsSample.
    assert.deepEqual(result.payload.unmaskedRowsSample, [{ row: 0, values: ['1', '123-45-6789', CARD] }]);
  });
});
