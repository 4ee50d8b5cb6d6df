import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { PARTS_VARIABLE, partsToStart } from './global-setup.ts';
import { ALL_PARTS, ENV_FILE_VARIABLE, type TestEnvInfo, testEnv } from './index.ts';

test('testEnv reads the facts the global setup wrote instead of starting servers', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'chaperone-index-'));
  const previous = process.env[ENV_FILE_VARIABLE];
  t.after(async () => {
    if (previous === undefined) delete process.env[ENV_FILE_VARIABLE];
    else process.env[ENV_FILE_VARIABLE] = previous;
    await rm(dir, { recursive: true, force: true });
  });
  // Facts of a server that does not exist: testEnv must hand them out as they are.
  const shared: TestEnvInfo = {
    oidc: {
      issuer: 'http://127.0.0.1:1',
      clientId: 'c',
      clientSecret: 's',
      audience: 'urn:a',
      tokenEndpoint: 'http://127.0.0.1:1/token',
    },
  };
  const file = join(dir, 'env.json');
  await writeFile(file, JSON.stringify(shared));
  process.env[ENV_FILE_VARIABLE] = file;
  assert.deepEqual(await testEnv(['oidc']), shared);
});

test(`${PARTS_VARIABLE} selects parts, and names unknown ones`, () => {
  assert.deepEqual(partsToStart(undefined), ALL_PARTS);
  assert.deepEqual(partsToStart(''), ALL_PARTS);
  assert.deepEqual(partsToStart('minio, postgres'), ['minio', 'postgres']);
  assert.throws(() => partsToStart('minio,redis'), /unknown part\(s\) redis/);
});
