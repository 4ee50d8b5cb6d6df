#!/usr/bin/env bash
# Builds ssh2's native crypto binding (sshcrypto.node) against the headers of the Node the project
# runs on, whatever `nodedir` the machine's npmrc names (built against other headers it does not load,
# and ssh2 silently falls back to ciphers in JavaScript at about twice the CPU per byte).
#
# Node 24.19+ headers make every node::ObjectWrap register an environment cleanup hook that its
# destructor removes; the destructor runs from a V8 weak callback with no context entered, and Node
# aborts the process (`Assertion failed: (env) != nullptr` in RemoveEnvironmentCleanupHook, seen
# here in the SSH bench; mscdex/ssh2#1511, nodejs/node#65446). node_object_wrap.h is header-only,
# so the binding is built against a copy of the headers whose ObjectWrap registers no hook, as with
# 24.18 and earlier.
#   scripts/build-ssh2-binding.sh <directory holding node's bin/ and include/>
set -euo pipefail
nodedir=${1:?usage: $0 <node dir>}
headers=$(mktemp -d)
trap 'rm -rf "$headers"' EXIT
cp -r "$nodedir/include" "$headers/include"
wrap=$headers/include/node/node_object_wrap.h
sed -i -e 's/^\(\s*AddEnvironmentCleanupHook(v8::Isolate::GetCurrent(), CleanupHook, this);\)/    \/\/ (chaperone) no cleanup hook: \1/' \
  -e 's/^\(\s*RemoveEnvironmentCleanupHook(v8::Isolate::GetCurrent(), CleanupHook, this);\)/    \/\/ (chaperone) no cleanup hook: \1/' "$wrap"
if grep -q '^\s*\(Add\|Remove\)EnvironmentCleanupHook(v8::Isolate' "$wrap"; then
  echo "build-ssh2-binding: $wrap changed shape; check the ObjectWrap cleanup hooks by hand" >&2
  exit 1
fi
npm rebuild ssh2 --nodedir="$headers"
binding=$(node -p "require.resolve('ssh2/lib/protocol/crypto/build/Release/sshcrypto.node')")
if grep -q RemoveEnvironmentCleanupHook "$binding"; then
  echo "build-ssh2-binding: $binding still calls RemoveEnvironmentCleanupHook" >&2
  exit 1
fi
node -e "if (!require('ssh2/lib/protocol/crypto.js').bindingAvailable) { console.error('ssh2 binding did not load'); process.exit(1); }"
