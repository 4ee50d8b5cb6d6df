// PostgreSQL from the Debian packages, a throwaway cluster on 127.0.0.1 with SCRAM over TCP.
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, readdirSync } from 'node:fs';
import { chmod, chown, mkdir, stat, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { freePort, LOOPBACK, run, spawnOwned, waitUntil } from './net.ts';
import type { RunningPart } from './part.ts';
import { unprivilegedUser } from './postgres-user.ts';
import type { PostgresInfo } from './types.ts';

const POSTGRES_ROOT = '/usr/lib/postgresql';
/** Members of this role log in with md5 (pg_hba.conf), everyone else with SCRAM-SHA-256. */
export const MD5_GROUP = 'chaperone_md5_login';

/** The bin directory of the highest PostgreSQL major installed. */
export function postgresBinDir(): string {
  const majors = existsSync(POSTGRES_ROOT)
    ? readdirSync(POSTGRES_ROOT)
        .filter((d) => /^\d+$/.test(d) && existsSync(join(POSTGRES_ROOT, d, 'bin', 'postgres')))
        .map(Number)
        .sort((a, b) => b - a)
    : [];
  if (majors.length === 0) {
    throw new Error(
      `no PostgreSQL server under ${POSTGRES_ROOT}: run \`make system\` (scripts/setup-system.sh)`,
    );
  }
  return join(POSTGRES_ROOT, String(majors[0]), 'bin');
}

/** The pg_hba.conf of the test cluster: trust on its private socket, passwords over TCP. */
export function renderPgHba(): string {
  return [
    '# TYPE  DATABASE  USER  ADDRESS  METHOD',
    'local   all       all            trust',
    `host    all       +${MD5_GROUP}  127.0.0.1/32  md5`,
    `host    all       +${MD5_GROUP}  ::1/128       md5`,
    'host    all       all   127.0.0.1/32  scram-sha-256',
    'host    all       all   ::1/128       scram-sha-256',
    '',
  ].join('\n');
}

/** Server settings: fast rather than durable (throwaway data), room for 200+ sessions. */
export function serverSettings(port: number, socketDir: string): Record<string, string> {
  return {
    listen_addresses: LOOPBACK,
    port: String(port),
    unix_socket_directories: socketDir,
    max_connections: '300',
    shared_buffers: '64MB',
    fsync: 'off',
    synchronous_commit: 'off',
    full_page_writes: 'off',
    password_encryption: 'scram-sha-256',
    log_min_messages: 'warning',
    log_connections: 'off',
  };
}

/** Starts a fresh PostgreSQL cluster under `dir`. */
export async function startPostgres(dir: string): Promise<RunningPart<PostgresInfo>> {
  const binDir = postgresBinDir();
  const owner = await unprivilegedUser();
  const dataDir = join(dir, 'data');
  const socketDir = join(dir, 'socket');
  await mkdir(socketDir, { recursive: true });
  // The server runs as an unprivileged user: it must be able to reach its directory.
  await allowTraversal(dirname(dir));
  await chmod(dir, 0o711);
  const password = randomBytes(18).toString('base64url');
  const pwfile = join(dir, 'pwfile');
  await writeFile(pwfile, `${password}\n`, { mode: 0o600 });
  if (owner) {
    await chown(dir, owner.uid, owner.gid);
    await chown(socketDir, owner.uid, owner.gid);
    await chown(pwfile, owner.uid, owner.gid);
  }
  const user = 'postgres';
  const ids = owner ? { uid: owner.uid, gid: owner.gid } : {};
  await run(
    join(binDir, 'initdb'),
    [
      '-D',
      dataDir,
      '-U',
      user,
      `--pwfile=${pwfile}`,
      '--auth=trust',
      '--no-sync',
      '-E',
      'UTF8',
      '--locale=C',
    ],
    { ...ids, env: { PATH: process.env.PATH, LANG: 'C' } },
  );
  await writeFile(join(dataDir, 'pg_hba.conf'), renderPgHba());
  if (owner) await chown(join(dataDir, 'pg_hba.conf'), owner.uid, owner.gid);

  const port = await freePort();
  const settings = Object.entries(serverSettings(port, socketDir)).flatMap(([k, v]) => ['-c', `${k}=${v}`]);
  const proc = spawnOwned(join(binDir, 'postgres'), ['-D', dataDir, ...settings], {
    name: 'postgres',
    logFile: join(dir, 'postgres.log'),
    ...ids,
    env: { PATH: process.env.PATH, LANG: 'C' },
    // SIGQUIT is an immediate shutdown that still removes shared memory and the socket lock.
    deathSignal: 'SIGQUIT',
    // SIGINT is the fast shutdown: sessions are ended, no checkpoint wait for clients.
    stopSignal: 'SIGINT',
  });
  if (owner) await chown(join(dir, 'postgres.log'), owner.uid, owner.gid);
  const info: PostgresInfo = {
    host: LOOPBACK,
    port,
    user,
    password,
    database: 'postgres',
    url: `postgres://${user}:${encodeURIComponent(password)}@${LOOPBACK}:${port}/postgres`,
    binDir,
  };
  try {
    await waitUntil(
      'postgres',
      () =>
        run(join(binDir, 'pg_isready'), ['-q', '-h', LOOPBACK, '-p', String(port)]).then(
          () => true,
          () => false,
        ),
      { process: proc, intervalMs: 100 },
    );
    await psql(info, `CREATE ROLE ${MD5_GROUP} NOLOGIN`);
  } catch (err) {
    await proc.stop();
    throw err;
  }
  return { info, stop: () => proc.stop() };
}

async function allowTraversal(path: string): Promise<void> {
  const st = await stat(path);
  if ((st.mode & 0o001) === 0 && st.uid === process.getuid?.()) await chmod(path, (st.mode & 0o7777) | 0o111);
}

export interface PsqlOptions {
  user?: string;
  password?: string;
  database?: string;
}

/**
 * Runs SQL through the real psql binary over TCP (so with password authentication) and returns
 * its unaligned, tuples-only output; rejects with psql's error output on any error.
 */
export function psql(info: PostgresInfo, sql: string, options: PsqlOptions = {}): Promise<string> {
  const args = ['-X', '-q', '-A', '-t', '-v', 'ON_ERROR_STOP=1', '-h', info.host, '-p', String(info.port)];
  args.push('-U', options.user ?? info.user, '-d', options.database ?? info.database, '-c', sql);
  return run(join(info.binDir, 'psql'), args, {
    env: { PATH: process.env.PATH, PGPASSWORD: options.password ?? info.password, PGCONNECT_TIMEOUT: '10' },
  });
}

export interface RoleSpec {
  name: string;
  password: string;
  /** How the role authenticates over TCP: SCRAM-SHA-256 (the default) or the legacy md5. */
  method?: 'scram' | 'md5';
  superuser?: boolean;
}

/** SQL identifier / literal quoting for the few statements built here. */
export const quoteIdent = (s: string): string => `"${s.replaceAll('"', '""')}"`;
export const quoteLiteral = (s: string): string => `'${s.replaceAll("'", "''")}'`;

/**
 * Creates a login role. md5 roles get an md5 password verifier (computed here, so no server
 * setting matters) and membership in the group pg_hba.conf sends to md5 authentication.
 */
export async function createRole(info: PostgresInfo, spec: RoleSpec): Promise<void> {
  const method = spec.method ?? 'scram';
  const verifier =
    method === 'md5'
      ? `md5${createHash('md5')
          .update(spec.password + spec.name)
          .digest('hex')}`
      : spec.password;
  const role = quoteIdent(spec.name);
  const statements = [
    `CREATE ROLE ${role} LOGIN ${spec.superuser ? 'SUPERUSER' : ''} PASSWORD ${quoteLiteral(verifier)}`,
  ];
  if (method === 'md5') statements.push(`GRANT ${MD5_GROUP} TO ${role}`);
  await psql(info, `SET password_encryption = 'scram-sha-256'; ${statements.join('; ')}`);
}
