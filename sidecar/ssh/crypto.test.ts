// ssh2's native binding must load in the Node the sidecar runs on (see crypto.ts).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { nativeSshCrypto } from './crypto.ts';

test('ssh2 loads its native crypto binding', () => {
  assert.equal(
    nativeSshCrypto,
    true,
    'node_modules/ssh2/lib/protocol/crypto/build/Release/sshcrypto.node did not load: rebuild it against this Node (make -B deps)',
  );
});
