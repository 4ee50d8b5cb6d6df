// ssh2's native binding must load in the Node the sidecar runs on (see crypto.ts).
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { test } from 'node:test';
import { nativeSshCrypto } from './crypto.ts';

test('ssh2 loads its native crypto binding', () => {
  assert.equal(
    nativeSshCrypto,
    true,
    'node_modules/ssh2/lib/protocol/crypto/build/Release/sshcrypto.node did not load: rebuild it against this Node (scripts/build-ssh2-binding.sh)',
  );
});

test('the binding was built without the ObjectWrap cleanup hooks that abort Node 24 during GC', async () => {
  const path = createRequire(import.meta.url).resolve(
    'ssh2/lib/protocol/crypto/build/Release/sshcrypto.node',
  );
  const binary = await readFile(path);
  assert.equal(
    binary.includes('RemoveEnvironmentCleanupHook'),
    false,
    `${path} calls RemoveEnvironmentCleanupHook from its destructors: build it with scripts/build-ssh2-binding.sh`,
  );
});
