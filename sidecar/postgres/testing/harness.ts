// Test support for the postgres gateway: the shared sidecar harness (sidecar/testing/harness.ts) in
// front of the real test PostgreSQL, with an upstream role only the sidecar knows the password of,
// the sidecar's log kept for assertions, and real psql runs.
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { createRole, psql } from '../../../test/env/postgres.ts';
import type { MinioInfo, PostgresInfo } from '../../../test/env/types.ts';
import type { SidecarConfigInput } from '../../config/index.ts';
import type { SidecarOptions } from '../../server/sidecar.ts';
import {
  capturingLogger,
  openWorkspace,
  type RunResult,
  runProcess,
  type SidecarHarness,
  startSidecarHarness,
} from '../../testing/harness.ts';
import { DEFAULT_LIMITS, type PostgresLimits } from '../context.ts';

export { AGENT_SUBJECT, kinds, runProcess, TOKEN_AUDIENCE } from '../../testing/harness.ts';
export type PsqlResult = RunResult;

export interface Harness extends SidecarHarness {
  pg: PostgresInfo;
  upstreamUser: string;
  upstreamPassword: string;
  /** Every line the sidecar logged (debug and up). */
  logs: Record<string, unknown>[];
  /** psql against the sidecar, the token as the password. */
  psql(args: string[], opts: { token?: string; stdin?: string; timeoutMs?: number }): Promise<PsqlResult>;
  /** Connection settings for node-postgres through the sidecar. */
  clientConfig(token?: string): {
    host: string;
    port: number;
    user: string;
    password?: string;
    database: string;
  };
}

/** A guardrail that blocks DROP and tells the agent why (`DROP TABLE is not allowed`). */
export const NO_DROP: NonNullable<SidecarConfigInput['guardrails']>[number] = {
  name: 'no-drop',
  match: { sqlClasses: ['drop'] },
  action: 'block',
  message: 'DROP TABLE is not allowed',
};

export interface HarnessOptions {
  config?: Partial<SidecarConfigInput>;
  limits?: Partial<PostgresLimits>;
  sidecar?: Partial<SidecarOptions>;
  /** The target's upstream instead of the test PostgreSQL (an impostor, say), and its TLS settings. */
  upstream?: { host: string; port: number };
  tls?: SidecarConfigInput['targets'][number]['tls'];
  /** How the upstream role logs in (pg_hba.conf of the test cluster): SCRAM by default. */
  upstreamMethod?: 'scram' | 'md5';
  /** Record to this MinIO (the S3 path a pod uses) instead of a local file:// store. */
  minio?: MinioInfo;
}

export async function startHarness(pg: PostgresInfo, options: HarnessOptions = {}): Promise<Harness> {
  const upstreamUser = `chaperone_up_${randomBytes(4).toString('hex')}`;
  const upstreamPassword = randomBytes(18).toString('base64url');
  await createRole(pg, {
    name: upstreamUser,
    password: upstreamPassword,
    superuser: true,
    ...(options.upstreamMethod ? { method: options.upstreamMethod } : {}),
  });
  const ws = await openWorkspace('pg', { username: upstreamUser, password: upstreamPassword });
  const { logger, logs } = capturingLogger();
  const h = await startSidecarHarness(ws, {
    target: {
      name: 'orders-db',
      protocol: 'postgres',
      upstream: options.upstream ?? { host: pg.host, port: pg.port },
      ...(options.tls ? { tls: options.tls } : {}),
    },
    policy: { name: 'test-policy', generation: 3 },
    shutdownGraceSeconds: 5,
    ...(options.minio ? { minio: options.minio } : {}),
    ...(options.config ? { config: options.config } : {}),
    logger,
    admin: true,
    sidecar: { limits: { ...DEFAULT_LIMITS, ...options.limits }, ...options.sidecar },
    cleanup: () =>
      psql(pg, `DROP OWNED BY ${upstreamUser}; DROP ROLE ${upstreamUser}`).catch(() => undefined),
  });
  return {
    ...h,
    pg,
    upstreamUser,
    upstreamPassword,
    logs,
    psql(args, opts) {
      const env: NodeJS.ProcessEnv = { PATH: process.env.PATH, PGCONNECT_TIMEOUT: '10', LANG: 'C' };
      if (opts.token !== undefined) env.PGPASSWORD = opts.token;
      return runProcess(
        join(pg.binDir, 'psql'),
        ['-X', '-h', '127.0.0.1', '-p', String(h.port), '-U', 'agent', '-d', pg.database, ...args],
        { env, stdin: opts.stdin, timeoutMs: opts.timeoutMs },
      );
    },
    clientConfig(password = h.token) {
      return { host: '127.0.0.1', port: h.port, user: 'agent', password, database: pg.database };
    },
  };
}
