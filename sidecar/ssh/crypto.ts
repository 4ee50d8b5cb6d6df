// Whether ssh2 runs its ciphers in its native binding (sshcrypto.node, built by ssh2's install
// script against the Node headers it is given). Without it ssh2 falls back to JavaScript that
// creates a new OpenSSL cipher and key object per packet for AES-GCM and runs Poly1305 in WebAssembly
// for chacha20: the sidecar then spends about twice the CPU per relayed MiB (docs/benchmarks.md,
// "SSH gateway"). A binding built against other Node headers fails to load and ssh2 says nothing,
// so the sidecar says it (a warning at start) and the tests fail. scripts/build-ssh2-binding.sh
// builds it (and says why it patches Node's ObjectWrap header).
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);

export const nativeSshCrypto: boolean = (
  require('ssh2/lib/protocol/crypto.js') as { bindingAvailable: boolean }
).bindingAvailable;
