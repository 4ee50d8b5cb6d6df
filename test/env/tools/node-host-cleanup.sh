#!/usr/bin/env bash
# Undoes what the real node (test/env/node.ts) changed on the host, so the next run starts clean:
# processes (kubelet, kube-proxy, containerd shims, ...) still running from the node's directory,
# mounts under it, the pod network namespaces, the iptables chains of kube-proxy, kubelet, the CNI
# plugins and the safety net, the cgroup root, the pod log links and the IPAM state.
# Usage: node-host-cleanup.sh <node-dir> [sysctl-snapshot-file]. Idempotent; also run by hand after
# a crash (`make node-clean`).
set -uo pipefail
dir=${1:?usage: node-host-cleanup.sh <node-dir> [sysctl-snapshot]}
snapshot=${2:-}
cgroup_root=${CHAPERONE_NODE_CGROUP:-chaperone-node}

# 1. Processes whose command line names the node directory (shims carry `-address <dir>/...sock`),
#    killed by pid.
kill_under_dir() {
  local pid cmd
  for pid in $(ls /proc | grep -E '^[0-9]+$'); do
    [[ $pid == "$$" ]] && continue
    { cmd=$(tr "\\0" " " <"/proc/$pid/cmdline"); } 2>/dev/null || continue
    [[ $cmd == *"$dir/"* && $cmd != *node-host-cleanup.sh* ]] && kill -9 "$pid" 2>/dev/null
  done
}
kill_under_dir
# Container processes live in the node's cgroups: kill what is left there.
for h in /sys/fs/cgroup/*/"$cgroup_root"; do
  [[ -d $h ]] || continue
  find "$h" -name cgroup.procs -exec cat {} + 2>/dev/null | sort -u | while read -r pid; do
    kill -9 "$pid" 2>/dev/null
  done
done
sleep 0.2

# 2. Mounts under the node directory and the pod network namespaces (deepest first).
awk -v d="$dir/" '{ gsub(/\\040/, " ", $5); if (index($5, d) == 1) print $5 }' /proc/self/mountinfo |
  sort -r | while read -r m; do umount -l "$m" 2>/dev/null; done
for ns in /run/netns/cni-*; do
  [[ -e $ns ]] || continue
  umount -l "$ns" 2>/dev/null
  rm -f "$ns"
done

# 3. iptables: jumps from the built-in chains to our chains, then the chains themselves.
ours='^(KUBE-|CNI-|CHAPERONE-NODE-)'
for table in filter nat mangle; do
  rules=$(iptables-save -t "$table" 2>/dev/null) || continue
  while read -r line; do
    eval "iptables -w -t $table ${line/#-A/-D}" 2>/dev/null
  done < <(grep -E '^-A (INPUT|OUTPUT|FORWARD|PREROUTING|POSTROUTING) .*-j (KUBE-|CNI-|CHAPERONE-NODE-)' <<<"$rules")
  chains=$(grep -oE '^:[^ ]+' <<<"$rules" | cut -c2- | grep -E "$ours")
  for c in $chains; do iptables -w -t "$table" -F "$c" 2>/dev/null; done
  for c in $chains; do iptables -w -t "$table" -X "$c" 2>/dev/null; done
done

# The pod CIDR's blackhole route (node.ts safetyNet).
ip route del blackhole 10.244.0.0/24 2>/dev/null

# kube-router's ipsets, once no rule references them.
for set in $(ipset list -n 2>/dev/null | grep -E '^(KUBE-|kube-router)'); do ipset destroy "$set" 2>/dev/null; done

# 4. Cgroups (deepest first), pod log links, IPAM state.
for h in /sys/fs/cgroup/*/"$cgroup_root"; do
  [[ -d $h ]] && find "$h" -depth -type d -exec rmdir {} + 2>/dev/null
done
for l in /var/log/containers/*.log; do
  [[ -L $l && $(readlink "$l") == "$dir/"* ]] && rm -f "$l"
done
rmdir /var/log/containers 2>/dev/null

# 5. Sysctls back to the values recorded before the node started (lines `key=value`).
if [[ -n $snapshot && -s $snapshot ]]; then
  while IFS='=' read -r key value; do
    [[ -n $key ]] && sysctl -q -w "$key=$value" >/dev/null 2>&1
  done <"$snapshot"
fi
exit 0
