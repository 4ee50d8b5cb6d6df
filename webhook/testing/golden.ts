// Golden files: the rendered output must equal webhook/testdata/<name>. UPDATE_GOLDEN=1 rewrites them
// (review the diff before committing). The convention lives in test/testing/golden.ts.
import { goldenDir } from '../../test/testing/golden.ts';

const testdata = goldenDir(new URL('../testdata/', import.meta.url));

export async function readTestdata(name: string): Promise<string> {
  return testdata.read(name);
}

export async function assertGolden(name: string, actual: string): Promise<void> {
  testdata.check(name, actual);
}
