// The sidecar as a process (node sidecar/main.ts): config from a ConfigMap-like directory, admin
// endpoints, hot reload through the `..data` symlink swap, rejected configs, and SIGTERM.
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, rename, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import pg from 'pg';
import { stringify } from 'yaml';
import { testEnv } from '../../test/env/index.ts';
import { freePort } from '../../test/env/net.ts';
import { createRole, psql as psqlRaw } from '../../test/env/postgres.ts';
import { until as untilShared } from '../../test/testing/until.ts';
import type { SidecarConfigInput } from '../config/index.ts';
import { type LocalIssuer, startLocalIssuer } from '../identity/testing/local-issuer.ts';
import { kinds, runProcess, TOKEN_AUDIENCE } from '../postgres/testing/harness.ts';
import { generateSigningKey, listSessions, openStore, readSession } from './modules.ts';

const env = await testEnv(['postgres']);
const direct = async (sql: string) => (await psqlRaw(env.postgres, sql)).trim();
const mainTs = new URL('../main.ts', import.meta.url).pathname;

interface Proc {
  child: ChildProcess;
  logs: Record<string, unknown>[];
  exited: Promise<number | null>;
}

function startSidecar(configPath: string): Proc {
  const child = spawn(process.execPath, [mainTs, '--config', configPath], {
    env: {
      ...process.env,
      CHAPERONE_ADMIN_HOST: '127.0.0.1',
      CHAPERONE_POD_NAME: 'agent-0',
      CHAPERONE_POD_NAMESPACE: 'agents',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const logs: Record<string, unknown>[] = [];
  let buf = '';
  child.stdout!.on('data', (d: Buffer) => {
    buf += d.toString();
    const lines = buf.split('\n');
    buf = lines.pop()!;
    for (const l of lines) if (l) logs.push(JSON.parse(l) as Record<string, unknown>);
  });
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  const exited = new Promise<number | null>((resolve) =>
    child.on('close', (code) => {
      if (code !== 0 && stderr) process.stderr.write(stderr);
      resolve(code);
    }),
  );
  return { child, logs, exited };
}

const until = <T>(what: string, check: () => Promise<T | undefined> | T | undefined) =>
  untilShared(what, check, { timeoutMs: 30_000, intervalMs: 100 });

const get = async (url: string) => {
  try {
    const r = await fetch(url);
    return { status: r.status, text: await r.text() };
  } catch {
    return undefined;
  }
};

describe('sidecar process', () => {
  let dir: string;
  let configDir: string;
  let base: SidecarConfigInput;
  let adminPort: number;
  let port1: number;
  let port2: number;
  let storeUrl: string;
  let proc: Proc;
  let generation = 0;
  let makeTarget: (name: string, listenPort: number) => unknown;
  /** The agent's password: a token of an issuer the sidecar's config trusts. */
  let token: string;
  let issuer: LocalIssuer;

  /** Publishes a config the way the kubelet does: a new timestamped dir, then swap `..data`. */
  async function publish(content: string): Promise<void> {
    const version = join(configDir, `..${Date.now()}_${generation++}`);
    await mkdir(version);
    await writeFile(join(version, 'config.yaml'), content);
    const tmpLink = join(configDir, '..data_tmp');
    await symlink(version.split('/').pop()!, tmpLink);
    await rename(tmpLink, join(configDir, '..data'));
  }

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'chaperone-main-'));
    configDir = join(dir, 'config');
    await mkdir(configDir);
    const user = `chaperone_main_${randomBytes(3).toString('hex')}`;
    const password = randomBytes(12).toString('hex');
    await createRole(env.postgres, { name: user, password, superuser: true });
    const creds = join(dir, 'creds');
    await mkdir(creds);
    await writeFile(join(creds, 'username'), user);
    await writeFile(join(creds, 'password'), password);
    const key = generateSigningKey();
    await writeFile(join(dir, 'key.pem'), key.privateKeyPem);
    storeUrl = `file://${join(dir, 'store')}`;
    await mkdir(join(dir, 'store'));
    [adminPort, port1, port2] = [await freePort(), await freePort(), await freePort()];
    issuer = await startLocalIssuer(undefined, { closeWithTest: false });
    token = await issuer.sign({ sub: 'agent-main', aud: TOKEN_AUDIENCE }, { expiresIn: '1h' });
    const target = (name: string, listenPort: number) => ({
      name,
      protocol: 'postgres' as const,
      upstream: { host: env.postgres.host, port: env.postgres.port },
      listenPort,
      credentialsDir: creds,
    });
    base = {
      apiVersion: 'chaperone.dev/sidecar-v1',
      policy: { name: 'p', generation: 1 },
      adminPort,
      shutdownGraceSeconds: 4,
      targets: [target('db-one', port1)],
      identity: { issuers: [{ issuer: issuer.issuer, audiences: [TOKEN_AUDIENCE] }] },
      recording: {
        store: { url: storeUrl },
        signingKeyFile: join(dir, 'key.pem'),
        keyId: key.keyId,
        spoolDir: join(dir, 'spool'),
        segment: { maxSeconds: 1 },
      },
    };
    await publish(stringify(base));
    await symlink('..data/config.yaml', join(configDir, 'config.yaml'));
    proc = startSidecar(join(configDir, 'config.yaml'));
    await until('readyz', async () => (await get(`http://127.0.0.1:${adminPort}/readyz`))?.status === 200);
    makeTarget = target;
  });
  after(async () => {
    if (proc.child.exitCode === null) proc.child.kill('SIGKILL');
    await issuer.close();
    await rm(dir, { recursive: true, force: true });
  });

  const psqlTo = (port: number, sql: string) =>
    runProcess(
      join(env.postgres.binDir, 'psql'),
      [
        '-X',
        '-q',
        '-A',
        '-t',
        '-h',
        '127.0.0.1',
        '-p',
        String(port),
        '-U',
        'agent',
        '-d',
        'postgres',
        '-c',
        sql,
      ],
      {
        env: { PATH: process.env.PATH, PGPASSWORD: token },
      },
    );

  test('admin endpoints: healthz, readyz, metrics', async () => {
    assert.equal((await get(`http://127.0.0.1:${adminPort}/healthz`))?.status, 200);
    const r = await psqlTo(port1, 'SELECT 1');
    assert.equal(r.stdout.trim(), '1', r.stderr);
    const metrics = await until('metrics', async () => {
      const m = await get(`http://127.0.0.1:${adminPort}/metrics`);
      return m && /chaperone_statements_total\{target="db-one",action="allow"\} 1/.test(m.text)
        ? m.text
        : undefined;
    });
    assert.match(metrics, /chaperone_sessions_total\{target="db-one"\} 1/);
    assert.match(metrics, /chaperone_upstream_connect_seconds_count\{target="db-one"\} 1/);
    assert.match(metrics, /chaperone_bytes_total\{target="db-one",direction="client"\} \d+/);
    assert.match(metrics, /chaperone_recording_spool_bytes \d+/);
  });

  test('hot reload: new rules and a new listener apply; an invalid config is rejected and the old one stays', async () => {
    await direct('CREATE TABLE reload_t (id int)');
    const target = makeTarget;
    const next = {
      ...base,
      policy: { name: 'p', generation: 2 },
      targets: [target('db-one', port1), target('db-two', port2)],
      guardrails: [{ name: 'no-drop', match: { sqlClasses: ['drop'] }, action: 'block' }],
    };
    await publish(stringify(next));
    await until('the new listener', async () =>
      (await psqlTo(port2, 'SELECT 2')).stdout.trim() === '2' ? true : undefined,
    );
    const blocked = await psqlTo(port1, 'DROP TABLE reload_t');
    assert.match(blocked.stderr, /statement blocked by rule no-drop/);
    assert.equal(await direct("SELECT to_regclass('reload_t') IS NOT NULL"), 't');
    // invalid: a listen port below 1024
    await publish(stringify({ ...next, targets: [target('db-one', 80)] }));
    await until('the rejection log line', () =>
      proc.logs.find((l) => l.msg === 'new config rejected; keeping the running one'),
    );
    const rejected = proc.logs.find((l) => l.msg === 'new config rejected; keeping the running one')!;
    assert.match(String(rejected.err), /listenPort/);
    assert.equal((await psqlTo(port2, 'SELECT 3')).stdout.trim(), '3', 'the old config still serves');
    // remove db-two
    await publish(stringify({ ...next, targets: [target('db-one', port1)] }));
    await until('db-two removed', async () =>
      (await psqlTo(port2, 'SELECT 4')).code !== 0 ? true : undefined,
    );
    assert.equal((await psqlTo(port1, 'SELECT 5')).stdout.trim(), '5');
  });

  test('SIGTERM: a running session finishes within the grace period; the recording is sealed and stored', async () => {
    const client = new pg.Client({
      host: '127.0.0.1',
      port: port1,
      user: 'agent',
      password: token,
      database: 'postgres',
      application_name: 'sigterm-finisher',
    });
    await client.connect();
    const stuck = new pg.Client({
      host: '127.0.0.1',
      port: port1,
      user: 'agent',
      password: token,
      database: 'postgres',
      application_name: 'sigterm-stuck',
    });
    await stuck.connect();
    const stuckError = new Promise<Error>((resolve) => stuck.on('error', resolve));
    await client.query('BEGIN');
    proc.child.kill('SIGTERM');
    // the open session can go on with its work during the grace period
    for (let i = 0; i < 5; i++) {
      await client.query('SELECT pg_sleep(0.1)');
    }
    await client.query('COMMIT');
    await client.end();
    // no new sessions meanwhile
    const refused = new pg.Client({
      host: '127.0.0.1',
      port: port1,
      user: 'agent',
      password: token,
      database: 'postgres',
    });
    await assert.rejects(refused.connect());
    // the idle one is terminated at the deadline with a clear error
    const err = (await stuckError) as Error & { code?: string };
    assert.equal(err.code, '57P01');
    assert.match(err.message, /chaperone: terminating connection/);
    assert.equal(await proc.exited, 0);
    const store = openStore(storeUrl);
    const apps = new Map<string, string[]>();
    const subjects = new Set<unknown>();
    for await (const s of listSessions(store)) {
      const events: { kind: string; payload: Record<string, unknown> }[] = [];
      for await (const e of readSession(store, s.sessionId)) events.push(e as never);
      subjects.add((events[0]?.payload.identity as { subject?: unknown } | undefined)?.subject);
      const app = kinds(events, 'pg.startup')[0]?.payload.application_name;
      if (typeof app === 'string')
        apps.set(
          app,
          events.map((e) => e.kind),
        );
    }
    const finisher = apps.get('sigterm-finisher');
    assert.ok(finisher, 'the finishing session is in the store');
    assert.equal(finisher.filter((k) => k === 'pg.query').length, 7);
    assert.ok(
      finisher.at(-1)?.includes('end'),
      `the recording ends with the session end: ${finisher.at(-1)}`,
    );
    assert.ok(apps.get('sigterm-stuck')?.at(-1)?.includes('end'), 'the terminated session is ended too');
    assert.ok(proc.logs.some((l) => l.msg === 'shutdown complete'));
    assert.deepEqual([...subjects], ['agent-main'], 'every session carries the verified token subject');
  });
});
