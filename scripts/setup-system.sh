#!/usr/bin/env bash
# Installs the Debian packages the tests and the demo run for real: PostgreSQL (server, psql,
# pgbench), pgbouncer, OpenSSH server and clients, iptables and iproute2 for network namespaces.
# Idempotent: does nothing when every package is present.
set -euo pipefail
pkgs=(postgresql postgresql-client postgresql-contrib pgbouncer openssh-server openssh-client iptables iproute2 unzip ca-certificates curl procps)
# Chromium for the web viewer's browser tests (playwright-core drives it: cli/serve/viewer.test.ts).
pkgs+=(chromium)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "[setup-system] installing: ${missing[*]}" >&2
  sudo=""; [[ $(id -u) -eq 0 ]] || sudo=sudo
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq >&2
  # The Debian package may start a cluster of its own on port 5432; the tests and the demo never use
  # it (each starts a throwaway cluster with initdb on a random port).
  $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
fi
# Debian's sshd refuses to start without its privilege-separation directory.
[[ -d /run/sshd ]] || { mkdir -p /run/sshd 2>/dev/null || sudo mkdir -p /run/sshd; }
exit 0
