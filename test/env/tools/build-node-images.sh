#!/usr/bin/env bash
# Builds the small images the real node needs, without Docker or a registry: OCI image archives
# written with tar and sha256sum, reproducible (files sorted, owned by 0:0, timestamps at the epoch),
# into the cache outside the repo; test/env/node.ts imports them with `ctr images import`.
#   pause:   the sandbox image, a static C binary built here with gcc (what registry.k8s.io/pause is).
#   busybox: a test image from Debian's busybox-static (sh, wget, nc, nslookup, ...).
# Usage: build-node-images.sh [outdir]. A warm run is a no-op: each archive is keyed by its inputs.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
cache=${CHAPERONE_CACHE:-$HOME/.cache/chaperone}
out=${1:-$cache/images}
mkdir -p "$out"
log() { printf '[build-node-images] %s\n' "$*" >&2; }

tarflags=(--sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner --format=posix
  --pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime)

# oci_archive name ref rootfs-dir entrypoint-json archive: writes an OCI image layout tarball whose
# index names the image `ref` for containerd (io.containerd.image.name).
oci_archive() {
  local name=$1 ref=$2 rootfs=$3 entrypoint=$4 archive=$5
  local work; work=$(mktemp -d)
  mkdir -p "$work/blobs/sha256"
  tar "${tarflags[@]}" -C "$rootfs" -cf "$work/layer.tar" .
  local layer_digest layer_size
  layer_digest=$(sha256sum "$work/layer.tar" | cut -d' ' -f1)
  layer_size=$(stat -c %s "$work/layer.tar")
  mv "$work/layer.tar" "$work/blobs/sha256/$layer_digest"
  printf '{"architecture":"amd64","os":"linux","config":{"Entrypoint":%s,"Env":["PATH=/bin"],"User":"%s","Labels":{"org.opencontainers.image.title":"%s","org.opencontainers.image.source":"chaperone test/env/tools/build-node-images.sh"}},"rootfs":{"type":"layers","diff_ids":["sha256:%s"]},"created":"1970-01-01T00:00:00Z"}' \
    "$entrypoint" "${USER_ID:-65534}" "$name" "$layer_digest" >"$work/config.json"
  local config_digest config_size
  config_digest=$(sha256sum "$work/config.json" | cut -d' ' -f1)
  config_size=$(stat -c %s "$work/config.json")
  mv "$work/config.json" "$work/blobs/sha256/$config_digest"
  printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%s},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"sha256:%s","size":%s}]}' \
    "$config_digest" "$config_size" "$layer_digest" "$layer_size" >"$work/manifest.json"
  local manifest_digest manifest_size
  manifest_digest=$(sha256sum "$work/manifest.json" | cut -d' ' -f1)
  manifest_size=$(stat -c %s "$work/manifest.json")
  mv "$work/manifest.json" "$work/blobs/sha256/$manifest_digest"
  printf '{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%s,"annotations":{"io.containerd.image.name":"%s","org.opencontainers.image.ref.name":"%s"}}]}' \
    "$manifest_digest" "$manifest_size" "$ref" "${ref##*:}" >"$work/index.json"
  printf '{"imageLayoutVersion":"1.0.0"}' >"$work/oci-layout"
  tar "${tarflags[@]}" -C "$work" -cf "$archive.tmp" oci-layout index.json blobs
  mv "$archive.tmp" "$archive"
  rm -rf "$work"
  log "$ref -> $archive (manifest sha256:$manifest_digest)"
}

# The sandbox image: a process that sleeps until signalled and reaps zombies, like Kubernetes' pause.c.
PAUSE_VERSION=chaperone-1
pause_archive=$out/pause-$PAUSE_VERSION.oci.tar
if [[ ! -s $pause_archive ]]; then
  root=$(mktemp -d)
  cat >"$root/pause.c" <<'C'
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>
static void sigdown(int signo) { (void)signo; _exit(0); }
static void sigreap(int signo) { (void)signo; while (waitpid(-1, NULL, WNOHANG) > 0) {} }
int main(void) {
  struct sigaction down = {.sa_handler = sigdown}, reap = {.sa_handler = sigreap, .sa_flags = SA_NOCLDSTOP};
  if (sigaction(SIGINT, &down, NULL) < 0 || sigaction(SIGTERM, &down, NULL) < 0 || sigaction(SIGCHLD, &reap, NULL) < 0) return 1;
  for (;;) pause();
}
C
  mkdir -p "$root/fs"
  gcc -Os -static -s -o "$root/fs/pause" "$root/pause.c"
  touch -d @0 "$root/fs/pause" "$root/fs"
  USER_ID=65535 oci_archive pause "localhost/chaperone/pause:$PAUSE_VERSION" "$root/fs" '["/pause"]' "$pause_archive"
  rm -rf "$root"
fi

# The test image: busybox-static from Debian (pinned by the package version recorded in the name).
bb_deb_version=$(dpkg-query -W -f='${Version}' busybox-static 2>/dev/null || true)
if [[ -z $bb_deb_version ]]; then log "busybox-static is not installed: run scripts/setup-system-node.sh"; exit 1; fi
bb_tag=${bb_deb_version//[:+~]/_}
bb_archive=$out/busybox-$bb_tag.oci.tar
if [[ ! -s $bb_archive ]]; then
  root=$(mktemp -d)
  mkdir -p "$root/fs/bin" "$root/fs/tmp" "$root/fs/etc"
  cp /bin/busybox "$root/fs/bin/busybox"
  for applet in $(/bin/busybox --list); do
    [[ $applet == busybox ]] || ln -s busybox "$root/fs/bin/$applet"
  done
  chmod 1777 "$root/fs/tmp"
  printf 'root:x:0:0:root:/:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/sh\n' >"$root/fs/etc/passwd"
  printf 'root:x:0:\nnogroup:x:65534:\n' >"$root/fs/etc/group"
  find "$root/fs" -exec touch -h -d @0 {} +
  oci_archive busybox "localhost/chaperone/busybox:$bb_tag" "$root/fs" '["/bin/sh"]' "$bb_archive"
  rm -rf "$root"
fi
printf '%s\n' "$pause_archive" "$bb_archive"
