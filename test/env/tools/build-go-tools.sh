#!/usr/bin/env bash
# Builds the real servers the test environment runs (kube-apiserver, kube-controller-manager, etcd,
# MinIO, mc) from the Go module proxy into a cache outside the repo. Each binary is keyed by its
# version, so a warm run is a no-op and a version bump rebuilds only what changed.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
cache=${CHAPERONE_CACHE:-$HOME/.cache/chaperone}
bin=$cache/bin
mkdir -p "$bin"

# shellcheck source=versions.env
source "$here/versions.env"

export GOFLAGS=-mod=mod
export GOTOOLCHAIN=${GOTOOLCHAIN:-auto}

log() { printf '[build-go-tools] %s\n' "$*" >&2; }

# A wrapper module per tool, created in the cache: it pins the version and, for Kubernetes, replaces
# every staging module (k8s.io/kubernetes requires them at v0.0.0 and replaces them with ./staging,
# which a module consumer cannot see).
wrapper() {
  local name=$1 dir=$cache/src/$1
  mkdir -p "$dir"
  printf '%s' "$dir"
}

# kube_wrapper: the wrapper module every Kubernetes binary is built from (same module, same ldflags).
kube_wrapper() {
  local dir; dir=$(wrapper kube-$KUBE_VERSION)
  local staging_version=v0.${KUBE_VERSION#v1.}
  {
    echo "module chaperone.dev/tools/kube"
    echo
    echo "go 1.24"
    echo
    echo "require k8s.io/kubernetes $KUBE_VERSION"
    echo
    for m in $(cat "$here/kube-staging-modules.txt"); do
      echo "replace k8s.io/$m => k8s.io/$m $staging_version"
    done
  } >"$dir/go.mod.new"
  # Rewritten only when it changed, so `go get` is not repeated for every command.
  if ! cmp -s "$dir/go.mod.new" "$dir/go.mod.in" 2>/dev/null; then
    cp "$dir/go.mod.new" "$dir/go.mod"
    cp "$dir/go.mod.new" "$dir/go.mod.in"
    ( cd "$dir" && go get "k8s.io/kubernetes/cmd/kube-apiserver@$KUBE_VERSION" >/dev/null )
  fi
  rm -f "$dir/go.mod.new"
  printf '%s' "$dir"
}

# build_kube_cmds cmd...: builds k8s.io/kubernetes/cmd/<cmd> into $bin/<cmd>-$KUBE_VERSION.
build_kube_cmds() {
  local cmds=() c
  for c in "$@"; do [[ -x $bin/$c-$KUBE_VERSION ]] || cmds+=("$c"); done
  ((${#cmds[@]})) || return 0
  local dir; dir=$(kube_wrapper)
  local minor=${KUBE_VERSION#v1.}; minor=${minor%%.*}
  log "building ${cmds[*]} $KUBE_VERSION (apiserver cold: ~15 min on 2 cores; node binaries on a warm cache: ~2 min)"
  local pkg=k8s.io/component-base/version
  local ldflags="-s -w -X $pkg.gitVersion=$KUBE_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
  local pkgs=()
  for c in "${cmds[@]}"; do pkgs+=("k8s.io/kubernetes/cmd/$c"); done
  ( cd "$dir" && go build -trimpath -ldflags "$ldflags" -o "$dir/out/" "${pkgs[@]}" )
  for c in "${cmds[@]}"; do mv "$dir/out/$c" "$bin/$c-$KUBE_VERSION"; done
}

build_kube() { build_kube_cmds kube-apiserver kube-controller-manager; }
# The real node (test/env/node.ts): kubelet, kube-proxy and kube-scheduler from the same module.
build_node() { build_kube_cmds kubelet kube-proxy kube-scheduler; }

build_simple() {
  # name module-path package version
  local name=$1 mod=$2 pkg=$3 version=$4 ldflags=${5:-}
  local out=$bin/$name-$version
  if [[ -x $out ]]; then return; fi
  local dir; dir=$(wrapper "$name-$version")
  printf 'module chaperone.dev/tools/%s\n\ngo 1.24\n' "$name" >"$dir/go.mod"
  log "building $name $version"
  ( cd "$dir"
    go get "$mod@$version" >/dev/null
    go build -trimpath -ldflags "-s -w $ldflags" -o "$dir/out/$name" "$pkg" )
  mv "$dir/out/$name" "$out"
}

want=${*:-etcd minio kube}
# kube and node together: one `go build`, so the packages they share are compiled once.
if [[ " $want " == *" kube "* && " $want " == *" node "* ]]; then
  build_kube_cmds kube-apiserver kube-controller-manager kubelet kube-proxy kube-scheduler
fi
for t in $want; do
  case $t in
    etcd) build_simple etcd go.etcd.io/etcd/server/v3 go.etcd.io/etcd/server/v3 "$ETCD_VERSION" ;;
    minio) build_simple minio github.com/minio/minio github.com/minio/minio "$MINIO_VERSION" ;;
    kube) build_kube ;;
    node) build_node ;;
    registry) build_simple registry github.com/distribution/distribution/v3 github.com/distribution/distribution/v3/cmd/registry "$REGISTRY_VERSION" ;;
    coredns) build_simple coredns github.com/coredns/coredns github.com/coredns/coredns "$COREDNS_VERSION" ;;
    kube-router) build_simple kube-router github.com/cloudnativelabs/kube-router/v2 github.com/cloudnativelabs/kube-router/v2/cmd/kube-router "$KUBE_ROUTER_VERSION" ;;
    crane) build_simple crane github.com/google/go-containerregistry github.com/google/go-containerregistry/cmd/crane "$CRANE_VERSION" ;;
    *) log "unknown tool $t"; exit 2 ;;
  esac
done
log "tools ready in $bin"
