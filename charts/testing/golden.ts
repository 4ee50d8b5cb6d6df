// Golden files under charts/testdata/. UPDATE_GOLDEN=1 (or CHAPERONE_UPDATE_GOLDEN=1, the operator's
// name for it) rewrites them; review the diff before committing.
import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

export const TESTDATA = join(import.meta.dirname, '..', 'testdata');
export const updating = process.env.UPDATE_GOLDEN === '1' || process.env.CHAPERONE_UPDATE_GOLDEN === '1';

export async function assertGolden(name: string, actual: string): Promise<void> {
  const file = join(TESTDATA, name);
  if (updating) {
    await writeFile(file, actual);
    return;
  }
  const expected = await readFile(file, 'utf8').catch(() => {
    throw new Error(`golden file charts/testdata/${name} missing: run with UPDATE_GOLDEN=1 to create it`);
  });
  assert.equal(actual, expected, `output differs from charts/testdata/${name} (UPDATE_GOLDEN=1 to accept)`);
}
