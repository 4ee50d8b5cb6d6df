// The test environment: real servers on 127.0.0.1 with random ports. Under `make test` the global
// setup starts them once and hands their facts to every test file through a JSON file; a test file
// run on its own starts the parts it asks for and stops them when it ends. Servers die with the
// process that started them (net.ts); CHAPERONE_TEST_ENV_PARTS=minio,postgres limits the global
// setup to some parts.
import { chmod, mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after } from 'node:test';
import { startKube, startKubeWithNode } from './kube.ts';
import { startMinio } from './minio.ts';
import { startOidc } from './oidc.ts';
import type { RunningPart } from './part.ts';
import { startPostgres } from './postgres.ts';
import { startSshd } from './sshd.ts';
import type { EnvPart, TestEnvInfo } from './types.ts';

export type { RunningPart } from './part.ts';
export type * from './types.ts';

/** The parts the whole suite starts by default. */
export const ALL_PARTS: readonly EnvPart[] = ['kube', 'minio', 'postgres', 'sshd', 'oidc'];
/**
 * Parts started only when named: `node` (a real kubelet, containerd, kube-proxy, CoreDNS and a
 * registry on this machine, node.ts) changes the host and needs `kube`, which then starts in node
 * mode.
 */
export const OPTIONAL_PARTS: readonly EnvPart[] = ['node'];
export const ENV_FILE_VARIABLE = 'CHAPERONE_TEST_ENV_FILE';

const starters: {
  [P in Exclude<EnvPart, 'node'>]: (dir: string) => Promise<RunningPart<NonNullable<TestEnvInfo[P]>>>;
} = {
  kube: startKube,
  minio: startMinio,
  postgres: startPostgres,
  sshd: startSshd,
  oidc: startOidc,
};

export interface RunningEnv {
  info: TestEnvInfo;
  dir: string;
  stop(): Promise<void>;
}

const DIR_PREFIX = 'chaperone-env-';

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Removes directories of earlier runs whose process is gone. Their servers died with that process
 * (parent-death signal), but a process killed outright never ran its cleanup.
 */
async function removeStaleDirs(): Promise<void> {
  const entries = await readdir(tmpdir()).catch(() => [] as string[]);
  await Promise.all(
    entries.map(async (name) => {
      const m = new RegExp(`^${DIR_PREFIX}(\\d+)-`).exec(name);
      if (m && Number(m[1]) !== process.pid && !alive(Number(m[1]))) {
        await rm(join(tmpdir(), name), { recursive: true, force: true }).catch(() => {});
      }
    }),
  );
}

/** Starts the given parts concurrently under a fresh temporary directory. */
export async function startEnv(parts: readonly EnvPart[]): Promise<RunningEnv> {
  // A node killed outright left host changes behind; undo them while its directory still exists.
  if (parts.includes('node')) await (await import('./node.ts')).cleanupStaleNode();
  await removeStaleDirs();
  const dir = await mkdtemp(join(tmpdir(), `${DIR_PREFIX}${process.pid}-`));
  // Servers running as other users (PostgreSQL, the sshd login) reach their own subdirectories.
  await chmod(dir, 0o711);
  const running: RunningPart<unknown>[] = [];
  const runningNode: RunningPart<unknown>[] = [];
  const info: TestEnvInfo = {};
  const withNode = parts.includes('node');
  const tasks: (() => Promise<void>)[] = parts
    .filter((p): p is Exclude<EnvPart, 'node'> => p !== 'node' && !(withNode && p === 'kube'))
    .map((part) => async () => {
      const started = Date.now();
      const handle = await starters[part](join(dir, part));
      running.push(handle);
      (info as Record<string, unknown>)[part] = handle.info;
      process.stderr.write(`[test-env] ${part} ready in ${Date.now() - started} ms\n`);
    });
  if (withNode) {
    tasks.push(async () => {
      const started = Date.now();
      const { kube, node } = await startKubeWithNode(join(dir, 'kube'), join(dir, 'node'));
      running.push(kube);
      runningNode.push(node);
      info.kube = kube.info;
      info.node = node.info;
      process.stderr.write(
        `[test-env] kube + node ready in ${Date.now() - started} ms (node ${node.info.startupMs} ms)\n`,
      );
    });
  }
  const results = await Promise.allSettled(tasks.map((t) => t()));
  const stop = async () => {
    // The node first: its pods and host changes go while the control plane still answers.
    await Promise.allSettled(runningNode.map((r) => r.stop()));
    await Promise.allSettled(running.map((r) => r.stop()));
    await rm(dir, { recursive: true, force: true });
  };
  const failed = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed.length > 0) {
    await stop();
    throw new AggregateError(
      failed.map((f) => f.reason),
      `test environment failed to start: ${failed.map((f) => String(f.reason?.message ?? f.reason)).join('; ')}`,
    );
  }
  return { info, dir, stop };
}

type EnvWith<P extends EnvPart> = TestEnvInfo & { [K in P]-?: NonNullable<TestEnvInfo[K]> };

/**
 * The facts of the parts a test needs. Reads the shared environment when the global setup
 * started one; otherwise starts the parts now and stops them after the test file.
 */
export async function testEnv<P extends EnvPart>(parts: readonly P[]): Promise<EnvWith<P>> {
  const file = process.env[ENV_FILE_VARIABLE];
  const shared = file ? (JSON.parse(await readFile(file, 'utf8')) as TestEnvInfo) : {};
  const missing = parts.filter((p) => shared[p] === undefined);
  if (missing.length === 0) return shared as EnvWith<P>;
  const env = await startEnv(missing);
  after(() => env.stop());
  return { ...shared, ...env.info } as EnvWith<P>;
}
