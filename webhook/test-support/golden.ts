// Golden files: the rendered output must equal webhook/testdata/<name>. UPDATE_GOLDEN=1 rewrites them
// (review the diff before committing).
import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

const TESTDATA = join(import.meta.dirname, '..', 'testdata');

export async function readTestdata(name: string): Promise<string> {
  return readFile(join(TESTDATA, name), 'utf8');
}

export async function assertGolden(name: string, actual: string): Promise<void> {
  const file = join(TESTDATA, name);
  if (process.env.UPDATE_GOLDEN === '1') {
    await writeFile(file, actual);
    return;
  }
  const expected = await readFile(file, 'utf8').catch(() => {
    throw new Error(`golden file webhook/testdata/${name} missing: run with UPDATE_GOLDEN=1 to create it`);
  });
  assert.equal(actual, expected, `output differs from webhook/testdata/${name} (UPDATE_GOLDEN=1 to accept)`);
}
