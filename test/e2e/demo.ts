#!/usr/bin/env node
// `make demo`: starts its own throwaway control plane, MinIO and PostgreSQL, tells the story in
// demo-story.ts step by step, cleans up, and exits non-zero when any step misbehaves.
import { homedir } from 'node:os';
import { join } from 'node:path';
import { startEnv } from '../env/index.ts';
import { DemoFailure, demoWorkDir, runDemo } from './demo-story.ts';

const print = (text: string) => process.stdout.write(text);

async function main(): Promise<number> {
  if (process.getuid?.() !== 0) {
    process.stderr.write(
      'make demo needs root: it creates a network namespace, veth pair and iptables rules for the agent pod.\n',
    );
    return 2;
  }
  const started = Date.now();
  print('Chaperone demo: an agent pod in Kubernetes, recorded, masked, guarded, and audited.\n');
  print('Starting the local servers (cached builds from ~/.cache/chaperone; the first run builds them)...\n');
  const env = await startEnv(['kube', 'minio', 'postgres']);
  const base = join(process.env.CHAPERONE_CACHE ?? join(homedir(), '.cache', 'chaperone'), 'demo');
  const workDir = await demoWorkDir(base);
  let code = 0;
  try {
    const { kube, minio, postgres } = env.info;
    if (!kube || !minio || !postgres) throw new Error('the test environment did not start every part');
    const report = await runDemo({
      env: { kube, minio, postgres },
      print,
      workDir,
      subnet: 200,
      isolated: false,
    });
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
  print(`\nFiles of this run (configs, logs, the recording public key): ${workDir}\n`);
  return code;
}

process.exitCode = await main();
