#!/usr/bin/env node
// `make demo`: builds Chaperone's images when they are missing or older than the sources, starts
// its own throwaway cluster (control plane and a real node), MinIO and PostgreSQL, tells the story
// in demo-story.ts step by step, cleans up, and exits non-zero when any step misbehaves.
import { execFile, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { stat } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { startEnv } from '../env/index.ts';
import { DemoFailure, runDemo } from './demo-story.ts';
import { REPO } from './testing/cluster.ts';
import { freshWorkDir } from './testing/story.ts';

const exec = promisify(execFile);
const print = (text: string) => process.stdout.write(text);
const cache = process.env.CHAPERONE_CACHE ?? join(homedir(), '.cache', 'chaperone');
/** What goes into the images (images/build.ts): a newer file here makes them stale. */
const IMAGE_INPUTS = [
  'cli',
  'crds',
  'operator',
  'recording',
  'sidecar',
  'webhook',
  'images',
  'package-lock.json',
];

/** Why the images must be (re)built, or undefined when the built ones are newer than every input. */
async function imagesStale(): Promise<string | undefined> {
  const list = join(cache, 'images', 'chaperone', 'images.json');
  if (!existsSync(list)) return 'not built yet';
  const built = (await stat(list)).mtimeMs;
  const { stdout } = await exec('git', ['-C', REPO, 'ls-files', '--', ...IMAGE_INPUTS], {
    maxBuffer: 16 << 20,
  });
  // The files images/build.ts leaves out (tests and their helpers) do not count.
  const shipped = stdout
    .trim()
    .split('\n')
    .filter((f) => !/\.test\.ts$/.test(f) && !/(^|\/)(testing|test-support|testdata|fixtures)\//.test(f));
  for (const file of shipped) {
    const s = await stat(join(REPO, file)).catch(() => undefined);
    if (s && s.mtimeMs > built) return `${file} changed since they were built`;
  }
  return undefined;
}

async function buildImages(): Promise<void> {
  const child = spawn(process.execPath, [join(REPO, 'images', 'build.ts')], { stdio: 'inherit' });
  const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
  if (code !== 0) throw new DemoFailure(`images/build.ts exited ${code}`);
}

async function main(): Promise<number> {
  if (process.getuid?.() !== 0) {
    process.stderr.write(
      'make demo needs root: the node changes iptables, cgroups and mounts of this machine (all undone at the end).\n',
    );
    return 2;
  }
  const started = Date.now();
  print('Chaperone demo: an agent in Kubernetes, recorded, masked, guarded, and audited.\n');
  const stale = await imagesStale();
  if (stale) {
    print(`Building Chaperone's images (${stale}; about a minute warm)...\n`);
    await buildImages();
  }
  print(
    'Starting the local cluster and servers (cached builds from ~/.cache/chaperone; the first run builds them)...\n',
  );
  const env = await startEnv(['kube', 'node', 'minio', 'postgres']);
  const workDir = await freshWorkDir(join(cache, 'demo'));
  let code = 0;
  try {
    const { kube, node, minio, postgres } = env.info;
    if (!kube || !node || !minio || !postgres)
      throw new Error('the test environment did not start every part');
    const report = await runDemo({ env: { kube, node, minio, postgres }, print, workDir });
    print(
      `\nDone in ${((Date.now() - started) / 1000).toFixed(0)} s: ${report.sessionIds.length} recorded session(s), every step behaved as shown.\n`,
    );
  } catch (error) {
    code = 1;
    const message = error instanceof DemoFailure ? error.message : String((error as Error)?.stack ?? error);
    process.stderr.write(`\nDEMO FAILED: ${message}\n`);
  } finally {
    await env.stop();
  }
  print(`\nFiles of this run (values, SessionPolicy, Job, logs, the recording public key): ${workDir}\n`);
  return code;
}

process.exitCode = await main();
