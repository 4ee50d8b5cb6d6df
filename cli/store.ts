// Which store the CLI reads: --store, else CHAPERONE_STORE. S3 settings come from the standard AWS
// environment (AWS_ENDPOINT_URL, AWS_REGION, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_PROFILE).
import { existsSync } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { openStore, type SegmentStore } from '../recording/index.ts';
import { CliError } from './errors.ts';

export function resolveStoreUrl(flag: string | undefined, env: NodeJS.ProcessEnv = process.env): string {
  const url = flag ?? env.CHAPERONE_STORE;
  if (!url)
    throw new CliError(
      'no store given: pass --store file:///dir or s3://bucket/prefix, or set CHAPERONE_STORE',
    );
  // A plain path is taken as a local directory.
  if (!url.includes('://')) return pathToFileURL(isAbsolute(url) ? url : resolve(url)).href;
  return url;
}

export function storeFromFlag(flag: string | undefined): SegmentStore {
  const url = resolveStoreUrl(flag);
  const store = openStore(url);
  if (url.startsWith('file://')) {
    const dir = fileURLToPath(url);
    if (!existsSync(dir)) throw new CliError(`store directory ${dir} does not exist`);
  }
  return store;
}
