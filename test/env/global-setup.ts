// node --test --test-global-setup: starts every part of the test environment once for the run.
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ALL_PARTS, ENV_FILE_VARIABLE, type RunningEnv, startEnv } from './index.ts';

let env: RunningEnv | undefined;

export async function globalSetup(): Promise<void> {
  const started = Date.now();
  env = await startEnv(ALL_PARTS);
  const file = join(env.dir, 'env.json');
  await writeFile(file, JSON.stringify(env.info, null, 2));
  process.env[ENV_FILE_VARIABLE] = file;
  process.stderr.write(`[test-env] ${ALL_PARTS.join(', ')} ready in ${Date.now() - started} ms (${file})\n`);
}

export async function globalTeardown(): Promise<void> {
  await env?.stop();
}
