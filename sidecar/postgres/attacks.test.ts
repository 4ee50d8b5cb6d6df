// Attacks on the PostgreSQL gateway's data path, tried against the real sidecar in front of the real
// PostgreSQL (docs/security.md names the promise each one tests). Each must be refused with a
// message naming the rule, leave the victim table as it was, and show in the recording.
import assert from 'node:assert/strict';
import { chmod, chown, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { type AddressInfo, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { serialize } from 'pg-protocol/dist/serializer.js';
import type { RecordedEvent } from '../../recording/index.ts';
import { testEnv } from '../../test/env/index.ts';
import { psql as psqlRaw } from '../../test/env/postgres.ts';
import { unprivilegedUser } from '../../test/env/postgres-user.ts';
import type { Recorder } from '../server/modules.ts';
import { B, errorFields } from './protocol.ts';
import { RawClient, typesOf } from './raw-client.ts';
import { type Harness, kinds, runProcess, startHarness } from './testing/harness.ts';

const env = await testEnv(['postgres']);
const direct = async (sql: string) => (await psqlRaw(env.postgres, sql)).trim();

/**
 * Two string literals to a guard lexing with standard_conforming_strings = on; with it off, the
 * server reads 'a\' || ' as one literal and then runs the DROP.
 */
const BACKSLASH_ATTACK = "SELECT 'a\\' || ' ; DROP TABLE victim; -- '";

const resetVictim = async () => {
  await direct(
    'DROP TABLE IF EXISTS victim; CREATE TABLE victim (id int, ssn text); INSERT INTO victim VALUES (1, $$123-45-6789$$), (2, $$987-65-4321$$); GRANT ALL ON victim TO PUBLIC',
  );
};
const victimRows = () => direct('SELECT count(*) FROM victim');

const blockedBy = (rule: string) => (events: RecordedEvent[]) =>
  kinds(events, 'policy.blocked').some((e) => e.payload.rule === rule);

describe('attacks on the postgres data path', () => {
  let h: Harness;
  before(async () => {
    h = await startHarness(env.postgres, {
      config: {
        guardrails: [
          { name: 'no-drop', match: { sqlClasses: ['drop'] }, action: 'block', message: 'no dropping' },
          {
            name: 'no-mass-change',
            match: { sqlClasses: ['deleteWithoutWhere', 'updateWithoutWhere'] },
            action: 'block',
          },
        ],
        masking: { columns: [{ pattern: '^ssn$', strategy: 'redact' }] },
      },
    });
  });
  after(() => h.close());

  const psqlWith = (extraEnv: Record<string, string>, args: string[], stdin = '') =>
    runProcess(
      join(h.pg.binDir, 'psql'),
      ['-X', '-h', '127.0.0.1', '-p', String(h.port), '-U', 'agent', '-d', h.pg.database, ...args],
      {
        env: { PATH: process.env.PATH, PGCONNECT_TIMEOUT: '10', LANG: 'C', PGPASSWORD: h.token, ...extraEnv },
        stdin,
      },
    );

  test('control: with standard_conforming_strings off, the attack text drops the table', async () => {
    await direct('CREATE TABLE victim_control (id int)');
    const pgInfo = env.postgres;
    // Two Query messages: the server lexes a whole Query before running any statement of it.
    const r = await runProcess(
      join(pgInfo.binDir, 'psql'),
      ['-X', '-h', pgInfo.host, '-p', String(pgInfo.port), '-U', pgInfo.user, '-d', pgInfo.database]
        .concat(['-c', 'SET standard_conforming_strings = off'])
        .concat(['-c', BACKSLASH_ATTACK.replace('victim', 'victim_control')]),
      { env: { PATH: process.env.PATH, PGPASSWORD: pgInfo.password } },
    );
    assert.equal(r.code, 0, r.stderr);
    assert.equal(await direct("SELECT to_regclass('victim_control') IS NULL"), 't');
  });

  test('SET / set_config / SET NAMES of a lexing setting are refused by rule lexing-settings', async () => {
    await resetVictim();
    for (const sql of [
      'SET standard_conforming_strings = off',
      "SELECT set_config('standard_conforming_strings', 'off', false)",
      "SET NAMES 'SJIS'",
      "UPDATE pg_settings SET setting = 'off' WHERE name = 'standard_conforming_strings'",
    ]) {
      const r = await psqlWith({}, ['-v', 'ON_ERROR_STOP=1', '-c', sql, '-c', BACKSLASH_ATTACK]);
      assert.notEqual(r.code, 0, sql);
      assert.match(r.stderr, /statement blocked by rule lexing-settings/, sql);
    }
    assert.equal(await victimRows(), '2', 'the DROP hidden in the literal never ran');
    await h.waitForSession(blockedBy('lexing-settings'));
  });

  test('lexing settings and role changes in the startup packet refuse the session', async () => {
    for (const [extraEnv, pattern] of [
      [{ PGCLIENTENCODING: 'SJIS' }, /client_encoding SJIS is unsafe/],
      [{ PGOPTIONS: '-c standard_conforming_strings=off' }, /standard_conforming_strings = off/],
      [{ PGOPTIONS: '-c role=postgres' }, /startup parameter role is not allowed/],
      [{ PGOPTIONS: '--session_authorization=postgres' }, /startup parameter session_authorization/],
    ] as const) {
      const r = await psqlWith(extraEnv, ['-c', 'SELECT 1']);
      assert.notEqual(r.code, 0, JSON.stringify(extraEnv));
      assert.match(r.stderr, /session refused by rule startup-parameters/, JSON.stringify(extraEnv));
      assert.match(r.stderr, pattern);
    }
    const events = await h.waitForSession((evs) =>
      kinds(evs, 'policy.blocked').some(
        (e) => e.payload.rule === 'startup-parameters' && String(e.payload.reason).includes('SJIS'),
      ),
    );
    assert.equal(kinds(events, 'pg.query').length, 0);
  });

  test('a blocked Parse under an existing name leaves the earlier, recorded statement', async () => {
    await resetVictim();
    const c = await RawClient.login(h.port, h.token);
    try {
      c.send(
        Buffer.concat([
          serialize.parse({ name: 's1', text: 'SELECT id, ssn FROM victim ORDER BY id' }),
          serialize.sync(),
        ]),
      );
      await c.until((f) => f.type === B.readyForQuery);
      c.send(
        Buffer.concat([
          serialize.parse({ name: 's1', text: 'DROP TABLE victim' }),
          serialize.bind({ statement: 's1' }),
          serialize.execute({}),
          serialize.sync(),
        ]),
      );
      const blocked = await c.until((f) => f.type === B.readyForQuery);
      assert.match(errorFields(blocked.find((f) => f.type === B.error)!.raw).M ?? '', /rule no-drop/);
      c.send(Buffer.concat([serialize.bind({ statement: 's1' }), serialize.execute({}), serialize.sync()]));
      const rows = await c.until((f) => f.type === B.readyForQuery);
      assert.equal(typesOf(rows), '2DDCZ');
      const cells = rows.filter((f) => f.type === B.dataRow).map((f) => f.raw.toString('latin1'));
      assert.ok(
        cells.every((row) => !row.includes('-45-') && !row.includes('-65-')),
        'ssn masked',
      );
    } finally {
      c.close();
    }
    assert.equal(await victimRows(), '2');
    const events = await h.waitForSession((evs) =>
      kinds(evs, 'pg.result').some((e) => e.payload.commandTag === 'SELECT 2' && e.payload.maskedCells === 2),
    );
    const executed = kinds(events, 'pg.query').filter((e) => e.payload.statementName === 's1');
    assert.ok(executed.some((e) => e.payload.sql === 'SELECT id, ssn FROM victim ORDER BY id'));
  });

  test('SQL DEALLOCATE and PREPARE under a protocol name, and cursors, cannot run unrecorded', async () => {
    await resetVictim();
    const c = await RawClient.login(h.port, h.token);
    try {
      c.send(
        Buffer.concat([
          serialize.parse({ name: 's2', text: 'SELECT id FROM victim' }),
          serialize.describe({ type: 'S', name: 's2' }),
          serialize.sync(),
        ]),
      );
      await c.until((f) => f.type === B.readyForQuery);
      c.send(serialize.query('DEALLOCATE s2; PREPARE s2 AS SELECT ssn AS id FROM victim'));
      await c.until((f) => f.type === B.readyForQuery);
      c.send(Buffer.concat([serialize.bind({ statement: 's2' }), serialize.execute({}), serialize.sync()]));
      const stale = await c.until((f) => f.type === B.readyForQuery);
      assert.equal(typesOf(stale), 'EZ');
      assert.match(errorFields(stale[0]!.raw).M ?? '', /rule prepared-statements: prepared statement "s2"/);
      c.send(serialize.query('BEGIN; DECLARE cur CURSOR FOR SELECT ssn FROM victim'));
      await c.until((f) => f.type === B.readyForQuery);
      c.send(Buffer.concat([serialize.execute({ portal: 'cur' }), serialize.sync()]));
      const cursor = await c.until((f) => f.type === B.readyForQuery);
      assert.ok(!cursor.some((f) => f.type === B.dataRow), 'no row of the cursor');
      assert.match(
        errorFields(cursor.find((f) => f.type === B.error)!.raw).M ?? '',
        /rule prepared-statements: portal "cur"/,
      );
    } finally {
      c.close();
    }
    await h.waitForSession(blockedBy('prepared-statements'));
  });

  test('forms that change every row, and opaque code, are caught by the classes a policy names', async () => {
    await resetVictim();
    await direct(
      "CREATE OR REPLACE FUNCTION wipe() RETURNS void LANGUAGE plpgsql AS $$ BEGIN EXECUTE 'DROP TABLE ' || 'victim'; END $$",
    );
    const attempts: [string, string][] = [
      ['DELETE FROM victim WHERE 1 = 1', 'no-mass-change'],
      ['UPDATE victim SET ssn = NULL WHERE id IS NOT NULL OR true', 'no-mass-change'],
      ['DELETE FROM victim WHERE EXISTS (SELECT 1)', 'no-mass-change'],
      ['MERGE INTO victim v USING victim s ON v.id = s.id WHEN MATCHED THEN DELETE', 'no-mass-change'],
      ['TRUNCATE victim', 'no-mass-change'],
      ["DO $$ BEGIN EXECUTE 'DR' || 'OP TABLE victim'; END $$", 'no-drop'],
      ['SELECT wipe()', 'no-drop'],
      [
        'WITH gone AS (DELETE FROM victim WHERE true RETURNING 1) SELECT count(*) FROM gone',
        'no-mass-change',
      ],
    ];
    for (const [sql, rule] of attempts) {
      const r = await psqlWith({}, ['-c', sql]);
      assert.notEqual(r.code, 0, sql);
      assert.match(r.stderr, new RegExp(`statement blocked by rule ${rule}`), sql);
    }
    assert.equal(await victimRows(), '2');
    const ok = await psqlWith({}, [
      '-A',
      '-t',
      '-c',
      'DELETE FROM victim WHERE id = 1 OR 1 = 2 RETURNING id',
    ]);
    assert.equal(ok.code, 0, ok.stderr);
    assert.equal(ok.stdout.trim().split('\n')[0], '1');
    await h.waitForSession((evs) =>
      kinds(evs, 'policy.blocked').some(
        (e) => e.payload.sql === 'SELECT wipe()' && e.payload.rule === 'no-drop',
      ),
    );
    await direct('DROP FUNCTION wipe()');
  });
});

describe('attacks through opaque code a policy allows', () => {
  // No guardrail: DO blocks and dynamic SQL run, so only the lexing checks stand in the way.
  let h: Harness;
  before(async () => {
    h = await startHarness(env.postgres);
  });
  after(() => h.close());

  test('opaque code that turns standard_conforming_strings off ends the session before the next text', async () => {
    await resetVictim();
    const opaque = "DO $$ BEGIN EXECUTE 'SET standard_' || 'conforming_strings = off'; END $$";
    // Pipelined in one write: the second Query waits for the first one's ReadyForQuery, whose
    // ParameterStatus ends the session.
    const c = await RawClient.login(h.port, h.token);
    c.send(Buffer.concat([serialize.query(opaque), serialize.query(BACKSLASH_ATTACK)]));
    const frames = await c.untilClosed();
    const fatal = frames.find((f) => f.type === B.error);
    assert.ok(fatal, 'an error before the connection closed');
    assert.match(errorFields(fatal.raw).M ?? '', /session ended by rule lexing-settings/);
    assert.equal(await victimRows(), '2');
    const events = await h.waitForSession((evs) => evs.some((e) => e.payload.sql === opaque));
    assert.ok(blockedBy('lexing-settings')(events));
    assert.ok(!kinds(events, 'pg.query').some((e) => e.payload.sql === BACKSLASH_ATTACK));
  });

  test('in one extended batch, text after opaque code is refused until Sync', async () => {
    await resetVictim();
    const c = await RawClient.login(h.port, h.token);
    try {
      c.send(
        Buffer.concat([
          serialize.parse({ text: "DO $$ BEGIN EXECUTE 'SELECT ' || '1'; END $$" }),
          serialize.bind({}),
          serialize.execute({}),
          serialize.parse({ name: 'attack', text: BACKSLASH_ATTACK }),
          serialize.bind({ statement: 'attack' }),
          serialize.execute({}),
          serialize.sync(),
        ]),
      );
      const frames = await c.until((f) => f.type === B.readyForQuery);
      const err = frames.find((f) => f.type === B.error);
      assert.ok(err);
      assert.match(errorFields(err.raw).M ?? '', /rule lexing-settings: .*send Sync first/);
    } finally {
      c.close();
    }
    assert.equal(await victimRows(), '2');
    await h.waitForSession((evs) =>
      kinds(evs, 'policy.blocked').some(
        (e) => e.payload.rule === 'lexing-settings' && e.payload.sql === BACKSLASH_ATTACK,
      ),
    );
  });
});

describe('credentials sent to whoever answers', () => {
  test('an impostor asking for a cleartext password gets nothing, and the session names the rule', async () => {
    const received: Buffer[] = [];
    const impostor = createServer((socket) => {
      socket.once('data', () => {
        // AuthenticationCleartextPassword, as a server that wants the password in the clear.
        const ask = Buffer.alloc(9);
        ask.write('R', 0);
        ask.writeInt32BE(8, 1);
        ask.writeInt32BE(3, 5);
        socket.write(ask);
        socket.on('data', (more: Buffer) => received.push(more));
      });
      socket.on('error', () => undefined);
    });
    await new Promise<void>((resolve) => impostor.listen(0, '127.0.0.1', resolve));
    const port = (impostor.address() as AddressInfo).port;
    const h = await startHarness(env.postgres, { upstream: { host: '127.0.0.1', port } });
    try {
      const r = await h.psql(['-c', 'SELECT 1'], { token: h.token });
      assert.notEqual(r.code, 0);
      assert.match(r.stderr, /rule upstream-identity: the upstream asked for a cleartext password/);
      const events = await h.waitForSession((evs) =>
        kinds(evs, 'pg.error').some((e) => String(e.payload.message).includes('upstream-identity')),
      );
      assert.equal(kinds(events, 'pg.error')[0]!.payload.phase, 'login');
      const sent = Buffer.concat(received).toString('latin1');
      assert.ok(!sent.includes(h.upstreamPassword), 'the password never reached the impostor');
      assert.ok(!received.some((b) => b[0] === 0x70), 'no PasswordMessage at all');
    } finally {
      await h.close();
      impostor.close();
    }
  });

  test('a name the pod hosts file overrides (hostAliases) is not connected to', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'chaperone-hosts-'));
    const hostsFile = join(dir, 'hosts');
    await writeFile(
      hostsFile,
      '# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n# Entries added by HostAliases.\n127.0.0.1\tpg.impostor.test\n',
    );
    process.env.CHAPERONE_HOSTS_FILE = hostsFile;
    const h = await startHarness(env.postgres, {
      upstream: { host: 'pg.impostor.test', port: env.postgres.port },
    });
    try {
      const r = await h.psql(['-c', 'SELECT 1'], { token: h.token });
      assert.notEqual(r.code, 0);
      assert.match(
        r.stderr,
        /rule upstream-identity: upstream host pg.impostor.test is overridden in .*hosts/,
      );
    } finally {
      delete process.env.CHAPERONE_HOSTS_FILE;
      await h.close();
      await rm(dir, { recursive: true, force: true });
    }
  });

  test('an md5 login over an unverified connection needs tls.allowUnverifiedPassword', async () => {
    const refused = await startHarness(env.postgres, { upstreamMethod: 'md5' });
    try {
      const r = await refused.psql(['-c', 'SELECT 1'], { token: refused.token });
      assert.notEqual(r.code, 0);
      assert.match(r.stderr, /rule upstream-identity: the upstream asked for a md5 password/);
    } finally {
      await refused.close();
    }
    const allowed = await startHarness(env.postgres, {
      upstreamMethod: 'md5',
      tls: { allowUnverifiedPassword: true },
    });
    try {
      const r = await allowed.psql(['-A', '-t', '-c', 'SELECT 41 + 1'], { token: allowed.token });
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout.trim(), '42');
    } finally {
      await allowed.close();
    }
  });
});

describe('recording under attack', () => {
  test('durability strict: the upstream sees a statement only once its event is durable', async () => {
    const h = await startHarness(env.postgres);
    await direct(
      'DROP TABLE IF EXISTS durable_t; CREATE TABLE durable_t (id int); GRANT ALL ON durable_t TO PUBLIC',
    );
    // Hook the recorder: when the statement's event is appended, look at the database before the
    // append is acknowledged. Under strict, the INSERT cannot have run yet.
    const recorder = (h.sidecar as unknown as { recorder: Recorder }).recorder;
    const start = recorder.startSession.bind(recorder);
    const seen: string[] = [];
    recorder.startSession = async (...args) => {
      const session = await start(...args);
      const append = session.append.bind(session);
      session.append = (event) => {
        const appended = append(event);
        if (event.kind !== 'pg.query' || event.payload.sql !== 'INSERT INTO durable_t VALUES (1)')
          return appended;
        return Promise.all([
          appended,
          direct('SELECT count(*) FROM durable_t').then((n) => seen.push(n)),
        ]).then(() => undefined);
      };
      return session;
    };
    try {
      assert.equal(h.config.recording.failMode, 'failClosed');
      assert.equal(h.config.recording.durability, undefined, 'strict by default with failClosed');
      const r = await h.psql(['-c', 'INSERT INTO durable_t VALUES (1)'], { token: h.token });
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual(seen, ['0'], 'the row was not there while the event was not yet durable');
      assert.equal(await direct('SELECT count(*) FROM durable_t'), '1');
    } finally {
      await h.close();
    }
  });

  test('a message over the size limit is refused before it is buffered, and recorded', async () => {
    const h = await startHarness(env.postgres, { limits: { maxMessageBytes: 1024 * 1024 } });
    try {
      const c = await RawClient.login(h.port, h.token);
      const header = Buffer.alloc(5);
      header.write('Q', 0);
      header.writeInt32BE(512 * 1024 * 1024, 1);
      c.send(header);
      const frames = await c.untilClosed();
      const err = errorFields(frames.find((f) => f.type === B.error)!.raw);
      assert.equal(err.C, '08P01');
      assert.match(err.M ?? '', /message of 536870912 bytes exceeds the limit of 1048576 bytes/);
      await h.waitForSession((evs) =>
        kinds(evs, 'pg.error').some((e) => String(e.payload.message).includes('exceeds the limit')),
      );
    } finally {
      await h.close();
    }
  });
});

describe('upstream over verified TLS', () => {
  // The test environment's PostgreSQL gets a self-signed certificate for 127.0.0.1 for this run.
  let certDir: string;
  before(async () => {
    certDir = await mkdtemp(join(tmpdir(), 'chaperone-pg-tls-'));
    await chmod(certDir, 0o755);
    const r = await runProcess(
      'openssl',
      ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2', '-subj', '/CN=127.0.0.1']
        .concat(['-addext', 'subjectAltName=IP:127.0.0.1'])
        .concat(['-keyout', join(certDir, 'server.key'), '-out', join(certDir, 'server.crt')]),
      { env: { PATH: process.env.PATH } },
    );
    assert.equal(r.code, 0, r.stderr);
    const owner = await unprivilegedUser();
    for (const f of ['server.key', 'server.crt']) {
      await chmod(join(certDir, f), 0o600);
      if (owner) await chown(join(certDir, f), owner.uid, owner.gid);
    }
    await direct(`ALTER SYSTEM SET ssl_cert_file = '${join(certDir, 'server.crt')}'`);
    await direct(`ALTER SYSTEM SET ssl_key_file = '${join(certDir, 'server.key')}'`);
    await direct('ALTER SYSTEM SET ssl = on');
    await direct('SELECT pg_reload_conf()');
    const deadline = Date.now() + 20_000;
    for (;;) {
      const on = await direct('SHOW ssl').catch(() => '');
      if (on === 'on') break;
      if (Date.now() > deadline) throw new Error('PostgreSQL did not turn TLS on');
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  });
  after(async () => {
    await direct('ALTER SYSTEM RESET ssl');
    await direct('SELECT pg_reload_conf()');
    await rm(certDir, { recursive: true, force: true });
  });

  test('verify-full with the named CA logs in with SCRAM-SHA-256-PLUS (channel binding)', async () => {
    const h = await startHarness(env.postgres, { tls: { caFile: join(certDir, 'server.crt') } });
    try {
      assert.equal(h.config.targets[0]!.tls.mode, 'verify-full', 'a named CA means verify-full');
      const r = await h.psql(['-A', '-t', '-c', 'SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()'], {
        token: h.token,
      });
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout.trim(), 't');
      const events = await h.waitForSession((evs) => kinds(evs, 'pg.startup').length > 0);
      assert.equal(kinds(events, 'pg.startup')[0]!.payload.upstreamAuth, 'SCRAM-SHA-256-PLUS');
    } finally {
      await h.close();
    }
  });

  test('a certificate for another name, or from an unknown CA, gets no credentials', async () => {
    for (const tls of [
      { caFile: join(certDir, 'server.crt'), serverName: 'db.impostor.example' },
      { mode: 'require' as const },
    ]) {
      const h = await startHarness(env.postgres, { tls });
      try {
        const r = await h.psql(['-c', 'SELECT 1'], { token: h.token });
        assert.notEqual(r.code, 0, JSON.stringify(tls));
        assert.match(r.stderr, /upstream TLS handshake failed/, JSON.stringify(tls));
      } finally {
        await h.close();
      }
    }
  });
});
