#!/usr/bin/env bash
# Installs the Debian packages the real test node (test/env/node.ts) runs: containerd and runc (the
# container runtime), the CNI plugins (ptp, host-local, loopback, portmap), conntrack (kube-proxy),
# ipset (kube-router's NetworkPolicy enforcement), busybox-static (the test image's content) and skopeo (pushes OCI archives to the local registry).
# Debian's packages rather than Go builds: they are security-maintained, pinned by the release, and
# cost no build time (containerd + runc from source would add minutes of CPU on 2 cores).
# Idempotent: does nothing when every package is present.
set -euo pipefail
pkgs=(containerd runc containernetworking-plugins conntrack busybox-static skopeo ipset iptables iproute2)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "[setup-system-node] installing: ${missing[*]}" >&2
  sudo=""; [[ $(id -u) -eq 0 ]] || sudo=sudo
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq >&2
  # The containerd package's systemd unit is not used: the test node starts its own containerd
  # with a private config, root and socket.
  $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
fi
exit 0
