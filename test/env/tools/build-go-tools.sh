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

build_kube() {
  local out_api=$bin/kube-apiserver-$KUBE_VERSION out_kcm=$bin/kube-controller-manager-$KUBE_VERSION
  if [[ -x $out_api && -x $out_kcm ]]; then return; fi
  local dir; dir=$(wrapper kube-$KUBE_VERSION)
  local staging_version=v0.${KUBE_VERSION#v1.}
  local minor=${KUBE_VERSION#v1.}; minor=${minor%%.*}
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
  } >"$dir/go.mod"
  log "building kube-apiserver and kube-controller-manager $KUBE_VERSION (cold: ~15 min on 2 cores)"
  local pkg=k8s.io/component-base/version
  local ldflags="-s -w -X $pkg.gitVersion=$KUBE_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
  ( cd "$dir"
    go get "k8s.io/kubernetes/cmd/kube-apiserver@$KUBE_VERSION" >/dev/null
    go build -trimpath -ldflags "$ldflags" -o "$dir/out/" k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager )
  mv "$dir/out/kube-apiserver" "$out_api"
  mv "$dir/out/kube-controller-manager" "$out_kcm"
}

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
for t in $want; do
  case $t in
    etcd) build_simple etcd go.etcd.io/etcd/server/v3 go.etcd.io/etcd/server/v3 "$ETCD_VERSION" ;;
    minio) build_simple minio github.com/minio/minio github.com/minio/minio "$MINIO_VERSION" ;;
    kube) build_kube ;;
    *) log "unknown tool $t"; exit 2 ;;
  esac
done
log "tools ready in $bin"
