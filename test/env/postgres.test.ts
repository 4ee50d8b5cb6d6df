import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import pg from 'pg';
import { testEnv } from './index.ts';
import { tcpAccepts } from './net.ts';
import { createRole, psql, startPostgres } from './postgres.ts';

const { postgres } = await testEnv(['postgres']);

/** Connects with node-postgres and records which password challenge the server sent. */
async function connect(config: pg.ClientConfig): Promise<{ client: pg.Client; challenge: string }> {
  const client = new pg.Client({
    host: postgres.host,
    port: postgres.port,
    database: postgres.database,
    ...config,
  });
  let challenge = 'none';
  const connection = (client as unknown as { connection: NodeJS.EventEmitter }).connection;
  connection.once('authenticationMD5Password', () => {
    challenge = 'md5';
  });
  connection.once('authenticationSASL', () => {
    challenge = 'scram';
  });
  connection.once('authenticationCleartextPassword', () => {
    challenge = 'cleartext';
  });
  await client.connect();
  return { client, challenge };
}

test('psql runs a query over TCP as the superuser', async () => {
  assert.equal((await psql(postgres, 'SELECT 6 * 7')).trim(), '42');
  assert.equal((await psql(postgres, 'SHOW max_connections')).trim(), '300');
});

test('psql refuses a wrong password', async () => {
  await assert.rejects(psql(postgres, 'SELECT 1', { password: 'wrong' }), /password authentication failed/);
});

test('node-postgres logs in with SCRAM-SHA-256', async () => {
  const { client, challenge } = await connect({ user: postgres.user, password: postgres.password });
  try {
    assert.equal(challenge, 'scram');
    const { rows } = await client.query<{ user: string }>('SELECT current_user AS user');
    assert.deepEqual(rows, [{ user: postgres.user }]);
  } finally {
    await client.end();
  }
});

test('an md5 role logs in with the md5 challenge, a SCRAM role with SCRAM', async () => {
  const suffix = randomBytes(4).toString('hex');
  const md5 = { name: `legacy_${suffix}`, password: `it's ${suffix}` };
  const scram = { name: `modern_${suffix}`, password: `pw-${suffix}` };
  await createRole(postgres, { ...md5, method: 'md5' });
  await createRole(postgres, { ...scram, method: 'scram' });
  const stored = await psql(
    postgres,
    `SELECT rolname || ' ' || split_part(rolpassword, '$', 1) FROM pg_authid WHERE rolname LIKE '%_${suffix}' ORDER BY 1`,
  );
  assert.match(stored, new RegExp(`^legacy_${suffix} md5[0-9a-f]{32}\nmodern_${suffix} SCRAM-SHA-256\n$`));

  const legacy = await connect({ user: md5.name, password: md5.password });
  assert.equal(legacy.challenge, 'md5');
  assert.equal((await legacy.client.query('SELECT current_user AS u')).rows[0].u, md5.name);
  await legacy.client.end();

  const modern = await connect({ user: scram.name, password: scram.password });
  assert.equal(modern.challenge, 'scram');
  await modern.client.end();

  assert.equal(
    (await psql(postgres, 'SELECT current_user', { user: md5.name, password: md5.password })).trim(),
    md5.name,
  );
  await assert.rejects(connect({ user: md5.name, password: 'wrong' }), /password authentication failed/);
});

test('200 sessions at once fit', async () => {
  const clients = Array.from({ length: 200 }, () => new pg.Client({ connectionString: postgres.url }));
  try {
    await Promise.all(clients.map((c) => c.connect()));
    const { rows } = await clients[0]!.query<{ n: number }>(
      "SELECT count(*)::int AS n FROM pg_stat_activity WHERE backend_type = 'client backend'",
    );
    assert.ok(rows[0]!.n >= 200, `${rows[0]!.n} sessions`);
  } finally {
    await Promise.all(clients.map((c) => c.end().catch(() => {})));
  }
});

test('a cluster of its own starts, and stop() shuts it down', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'chaperone-pg-own-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const started = Date.now();
  const own = await startPostgres(join(dir, 'postgres'));
  t.diagnostic(`warm start of postgres: ${Date.now() - started} ms`);
  assert.equal((await psql(own.info, 'SELECT 1')).trim(), '1');
  await own.stop();
  assert.equal(await tcpAccepts(own.info.host, own.info.port), false);
});
