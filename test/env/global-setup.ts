// node --test --test-global-setup: starts the test environment once for the whole run. Test files
// run in child processes of the runner and inherit its environment, so the variable set here
// reaches them (testEnv reads the facts from that file).
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import {
  ALL_PARTS,
  ENV_FILE_VARIABLE,
  type EnvPart,
  OPTIONAL_PARTS,
  type RunningEnv,
  startEnv,
} from './index.ts';

/** Set to a comma-separated subset of the parts to start only those (e.g. `minio,postgres`). */
export const PARTS_VARIABLE = 'CHAPERONE_TEST_ENV_PARTS';

let env: RunningEnv | undefined;

export function partsToStart(value: string | undefined): readonly EnvPart[] {
  if (!value?.trim()) return ALL_PARTS;
  const parts = value.split(',').map((p) => p.trim());
  const known: readonly string[] = [...ALL_PARTS, ...OPTIONAL_PARTS];
  const unknown = parts.filter((p) => !known.includes(p));
  if (unknown.length > 0) {
    throw new Error(`${PARTS_VARIABLE}: unknown part(s) ${unknown.join(', ')}; known: ${known.join(', ')}`);
  }
  // The node joins the control plane it starts with.
  if (parts.includes('node') && !parts.includes('kube')) parts.unshift('kube');
  return parts as EnvPart[];
}

export async function globalSetup(): Promise<void> {
  const parts = partsToStart(process.env[PARTS_VARIABLE]);
  const started = Date.now();
  env = await startEnv(parts);
  const file = join(env.dir, 'env.json');
  await writeFile(file, JSON.stringify(env.info, null, 2));
  process.env[ENV_FILE_VARIABLE] = file;
  process.stderr.write(`[test-env] ${parts.join(', ')} ready in ${Date.now() - started} ms (${file})\n`);
}

export async function globalTeardown(): Promise<void> {
  await env?.stop();
  env = undefined;
}
