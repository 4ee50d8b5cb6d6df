#!/usr/bin/env bash
# Builds the release into dist/: the npm package (chaperone + kubectl-chaperone), single executables
# for linux-x64 and linux-arm64 (Node SEA), krew archives and SHA256SUMS. See release/build.ts.
# CHAPERONE_RELEASE_ARCHES=x64 limits the executables to one architecture.
set -euo pipefail
cd "$(dirname "$0")/.."
node_bin=$(scripts/setup-node.sh)
export PATH=$node_bin:$PWD/node_modules/.bin:$PATH
exec node release/build.ts "$@"
