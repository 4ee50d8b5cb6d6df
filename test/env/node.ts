// A real Kubernetes node on this machine, joined to the test control plane (kube.ts): containerd and
// runc (Debian), the CNI plugins (Debian: ptp, host-local, loopback, portmap), kubelet, kube-proxy
// (iptables mode) and kube-scheduler from the same Kubernetes build as the apiserver, CoreDNS for
// cluster DNS, a local OCI registry (distribution) containerd pulls from, and, when built,
// kube-router's NetworkPolicy controller (iptables + ipset; kube-network-policies needs the nftables
// `queue` statement, CONFIG_NFT_QUEUE, which this kernel lacks). Started only when asked for (part
// `node`): it changes the host (iptables, ipsets, cgroups, sysctls, mounts), and everything it
// changes is undone on stop by tools/node-host-cleanup.sh (also after a crash, at the next start).
//
// Network safety: pod and Service CIDRs are routed only inside this machine (ptp veths, no
// masquerade), a host firewall chain drops and counts anything from them that would leave the
// machine (see `safetyNetDrops`), CoreDNS forwards nowhere, pods get no host resolver, and the
// node's servers refuse connections arriving by the uplink.
import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { copyFile, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { networkInterfaces } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { binaries, cacheDir, requireBinary } from './binaries.ts';
import { httpsRequest, type TlsTrust } from './kube-fetch.ts';
import { freePorts, type ServerProcess, startServerProcess, waitUntilReady } from './kube-process.ts';
import type { RunningPart } from './part.ts';
import type { KubeInfo, NodeInfo } from './types.ts';

const run = promisify(execFile);

export const POD_CIDR = '10.244.0.0/24';
/** Cluster DNS Service address (inside kube.ts's SERVICE_CLUSTER_IP_RANGE). */
export const CLUSTER_DNS_IP = '10.0.0.10';
export const NODE_NAME = 'chaperone-node';
/**
 * The node's taint: only pods that tolerate it (NODE_TOLERATION: the test/node files' pods) are
 * scheduled here. The default suite's other tests create pods with images of registries that do not
 * exist here; on the node, kubelet would try to pull them, and a pull asks the host's resolver, an
 * address off the machine.
 */
export const NODE_TAINT = { key: 'chaperone.dev/test-node', value: 'true', effect: 'NoSchedule' } as const;
export const NODE_TOLERATION = { ...NODE_TAINT, operator: 'Equal' } as const;
const CGROUP_ROOT = 'chaperone-node';
const SAFETY_CHAIN = 'CHAPERONE-NODE-SAFETY';
const SAFETY_OUT_CHAIN = 'CHAPERONE-NODE-SAFETY-OUT';
/** Inbound from the uplink to the node's servers (apiserver, kubelet, CoreDNS) is refused. */
const INBOUND_CHAIN = 'CHAPERONE-NODE-INBOUND';
const CNI_BIN_DIR = '/usr/lib/cni';
const LOCK = '/run/chaperone-node.lock';
/** Sysctls as they were before the node started (`key=value` lines), kept outside the node's dir. */
const SYSCTL_SNAPSHOT = '/run/chaperone-node.sysctls';
const tools = new URL('./tools/', import.meta.url).pathname;

/** Sysctls kubelet, kube-proxy or the CNI plugins may change; restored on stop. */
const SYSCTLS = [
  'net.ipv4.ip_forward',
  'vm.overcommit_memory',
  'kernel.panic',
  'kernel.panic_on_oops',
  'net.ipv4.conf.all.route_localnet',
  'net.bridge.bridge-nf-call-iptables',
  'net.netfilter.nf_conntrack_max',
  'net.netfilter.nf_conntrack_tcp_timeout_established',
  'net.netfilter.nf_conntrack_tcp_timeout_close_wait',
  'net.netfilter.nf_conntrack_tcp_be_liberal',
];

/** The address and interface of the default route: the node IP (must not be loopback). */
export function nodeAddress(): { ip: string; dev: string } {
  const routes = readFileSync('/proc/net/route', 'utf8').trim().split('\n').slice(1);
  const dev = routes.map((l) => l.split(/\s+/)).find((f) => f[1] === '00000000')?.[0];
  if (!dev) throw new Error('node: no default route, cannot choose a node IP');
  const ip = networkInterfaces()[dev]?.find((a) => a.family === 'IPv4' && !a.internal)?.address;
  if (!ip) throw new Error(`node: no IPv4 address on ${dev}`);
  return { ip, dev };
}

/** Packets the safety net dropped since the node started (must stay 0). */
export async function safetyNetDrops(): Promise<number> {
  let total = 0;
  for (const chain of [SAFETY_CHAIN, SAFETY_OUT_CHAIN]) {
    const { stdout } = await run('iptables', ['-w', '-t', 'filter', '-L', chain, '-n', '-v', '-x']);
    for (const line of stdout.split('\n').slice(2)) {
      const f = line.trim().split(/\s+/);
      if (f[2] === 'DROP') total += Number(f[0]);
    }
  }
  return total;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Undoes what a node left behind when its process was killed outright (no stop ran). Called by
 * startEnv before stale directories are removed; a no-op when no node ran or its owner is alive.
 */
export async function cleanupStaleNode(): Promise<void> {
  if (!existsSync(LOCK)) return;
  const [pidText, oldDir] = (await readFile(LOCK, 'utf8')).split('\n');
  const pid = Number(pidText);
  if (pid === process.pid || alive(pid)) return;
  if (oldDir) await hostCleanup(oldDir, SYSCTL_SNAPSHOT);
  await rm(LOCK, { force: true });
}

/**
 * One node per machine: kube-proxy's chains, the cgroup root and the pod CIDR are host-wide. A second
 * test run waits for the first to stop (several engineers share a machine) rather than failing;
 * CHAPERONE_NODE_LOCK_WAIT_S bounds the wait (default 40 minutes, 0 fails at once).
 */
async function takeLock(dir: string): Promise<void> {
  const waitS = Number(process.env.CHAPERONE_NODE_LOCK_WAIT_S ?? 2400);
  const deadline = Date.now() + waitS * 1000;
  let told = false;
  for (;;) {
    await cleanupStaleNode();
    try {
      // 'wx' creates atomically: two runs checking at once cannot both win.
      await writeFile(LOCK, `${process.pid}\n${dir}\n`, { flag: 'wx' });
      return;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    const [pidText, oldDir] = (await readFile(LOCK, 'utf8').catch(() => '')).split('\n');
    if (Date.now() >= deadline) {
      throw new Error(`node: another test node runs on this machine (pid ${pidText}, ${oldDir})`);
    }
    if (!told) {
      process.stderr.write(`node: waiting for the test node of pid ${pidText} to stop\n`);
      told = true;
    }
    await new Promise((r) => setTimeout(r, 2000));
  }
}

async function hostCleanup(dir: string, snapshot: string): Promise<void> {
  await run(join(tools, 'node-host-cleanup.sh'), [dir, snapshot], { env: { ...process.env } }).catch(
    () => {},
  );
}

async function snapshotSysctls(file: string): Promise<void> {
  const lines: string[] = [];
  for (const key of SYSCTLS) {
    const path = `/proc/sys/${key.replaceAll('.', '/')}`;
    if (existsSync(path)) lines.push(`${key}=${(await readFile(path, 'utf8')).trim()}`);
  }
  await writeFile(file, `${lines.join('\n')}\n`);
}

/** kubelet's cgroup root must exist in every v1 hierarchy, with cpuset copied from the root. */
async function createCgroupRoot(): Promise<void> {
  const base = '/sys/fs/cgroup';
  const v2 = existsSync(join(base, 'cgroup.controllers'));
  if (v2) {
    await mkdir(join(base, CGROUP_ROOT), { recursive: true });
    return;
  }
  const { readdir } = await import('node:fs/promises');
  for (const h of await readdir(base)) {
    const dir = join(base, h, CGROUP_ROOT);
    if (!existsSync(join(base, h, 'cgroup.procs'))) continue;
    await mkdir(dir, { recursive: true });
    if (h === 'cpuset') {
      for (const f of ['cpuset.cpus', 'cpuset.mems']) {
        await writeFile(join(dir, f), await readFile(join(base, h, f), 'utf8'));
      }
    }
  }
}

async function safetyNet(dev: string, serviceCidr: string, inboundPorts: number[]): Promise<void> {
  const ipt = (...args: string[]) => run('iptables', ['-w', ...args]);
  // The apiserver listens on every address in node mode, kubelet and CoreDNS on the node's: only
  // this machine (its pods included) may reach them, not the network behind the uplink.
  await ipt('-N', INBOUND_CHAIN);
  const ports = inboundPorts.join(',');
  await ipt('-A', INBOUND_CHAIN, '-i', dev, '-p', 'tcp', '-m', 'multiport', '--dports', ports, '-j', 'DROP');
  await ipt('-A', INBOUND_CHAIN, '-i', dev, '-p', 'udp', '-m', 'multiport', '--dports', ports, '-j', 'DROP');
  await ipt('-I', 'INPUT', '1', '-j', INBOUND_CHAIN);
  for (const chain of [SAFETY_CHAIN, SAFETY_OUT_CHAIN]) await ipt('-N', chain);
  // Forwarded: pods may talk to pods; anything else from the pod or Service CIDR leaving through the
  // routed path is off the machine (the node's own addresses are INPUT, not FORWARD).
  await ipt('-A', SAFETY_CHAIN, '-s', POD_CIDR, '-d', POD_CIDR, '-j', 'RETURN');
  await ipt('-A', SAFETY_CHAIN, '-s', POD_CIDR, '-j', 'DROP');
  await ipt('-A', SAFETY_CHAIN, '-s', serviceCidr, '-j', 'DROP');
  await ipt(
    '-A',
    SAFETY_CHAIN,
    '-m',
    'conntrack',
    '--ctorigdst',
    serviceCidr,
    '!',
    '-d',
    POD_CIDR,
    '-j',
    'DROP',
  );
  await ipt('-I', 'FORWARD', '1', '-j', SAFETY_CHAIN);
  // Host processes: nothing for a pod or Service address (or DNAT'd from one) leaves by the uplink.
  await ipt('-A', SAFETY_OUT_CHAIN, '-o', dev, '-d', POD_CIDR, '-j', 'DROP');
  await ipt('-A', SAFETY_OUT_CHAIN, '-o', dev, '-d', serviceCidr, '-j', 'DROP');
  await ipt('-A', SAFETY_OUT_CHAIN, '-o', dev, '-m', 'conntrack', '--ctorigdst', serviceCidr, '-j', 'DROP');
  await ipt('-I', 'OUTPUT', '1', '-j', SAFETY_OUT_CHAIN);
  // A pod's address routes nowhere once the pod is gone (its /32 veth route is more specific): a
  // host server answering a stopped pod (a late FIN) is dropped here, not sent to the uplink.
  await run('ip', ['route', 'replace', 'blackhole', POD_CIDR]);
}

function containerdConfig(dir: string, sandboxImage: string): string {
  return `version = 2
root = "${dir}/containerd/root"
state = "${dir}/containerd/state"
disabled_plugins = ["io.containerd.internal.v1.opt", "io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]

[grpc]
  address = "${dir}/containerd/containerd.sock"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "${sandboxImage}"
  # runc cannot lower oom_score_adj here (no CAP_SYS_RESOURCE in root's bounding set).
  restrict_oom_score_adj = true
  disable_apparmor = true
  stream_server_address = "127.0.0.1"
  # Pod network namespaces under the state dir, not /run/netns (removed with the node).
  netns_mounts_under_state_dir = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "${CNI_BIN_DIR}"
    conf_dir = "${dir}/cni/net.d"
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = "${dir}/containerd/certs.d"
`;
}

function cniConfig(dir: string, mtu: number): string {
  return JSON.stringify(
    {
      cniVersion: '1.0.0',
      name: 'chaperone',
      plugins: [
        {
          // Routed point-to-point veths: all pod traffic crosses the host's iptables (kube-proxy,
          // the policy enforcer, the safety net) without bridge netfilter.
          type: 'ptp',
          ipMasq: false,
          mtu,
          ipam: {
            type: 'host-local',
            ranges: [[{ subnet: POD_CIDR }]],
            routes: [{ dst: '0.0.0.0/0' }],
            dataDir: join(dir, 'cni', 'ipam'),
          },
        },
        { type: 'portmap', capabilities: { portMappings: true } },
      ],
    },
    null,
    2,
  );
}

interface KubeletPorts {
  kubelet: number;
  healthz: number;
}

function kubeletConfig(dir: string, nodeIp: string, ports: KubeletPorts): string {
  return JSON.stringify(
    {
      apiVersion: 'kubelet.config.k8s.io/v1beta1',
      kind: 'KubeletConfiguration',
      address: nodeIp,
      port: ports.kubelet,
      readOnlyPort: 0,
      healthzBindAddress: '127.0.0.1',
      healthzPort: ports.healthz,
      tlsCertFile: join(dir, 'pki', 'kubelet.crt'),
      tlsPrivateKeyFile: join(dir, 'pki', 'kubelet.key'),
      authentication: {
        anonymous: { enabled: false },
        webhook: { enabled: true },
        x509: { clientCAFile: join(dir, 'pki', 'ca.crt') },
      },
      authorization: { mode: 'Webhook' },
      containerRuntimeEndpoint: `unix://${dir}/containerd/containerd.sock`,
      cgroupDriver: 'cgroupfs',
      cgroupRoot: `/${CGROUP_ROOT}`,
      failCgroupV1: false,
      failSwapOn: false,
      registerWithTaints: [NODE_TAINT],
      // With true kubelet exits on this host's kernel defaults; the sysctls it sets are restored.
      protectKernelDefaults: false,
      clusterDNS: [CLUSTER_DNS_IP],
      clusterDomain: 'cluster.local',
      // Pods with dnsPolicy Default get no nameserver: the host's resolver is off the machine.
      resolvConf: join(dir, 'resolv.conf'),
      podLogsDir: join(dir, 'pod-logs'),
      // A busy shared disk must not make the node evict or garbage-collect images.
      evictionHard: { 'memory.available': '1Mi', 'nodefs.available': '1%', 'imagefs.available': '1%' },
      imageGCHighThresholdPercent: 100,
      imageGCLowThresholdPercent: 99,
      serializeImagePulls: false,
      maxPods: 50,
      syncFrequency: '10s',
      nodeStatusUpdateFrequency: '5s',
      shutdownGracePeriod: '0s',
      volumeStatsAggPeriod: '0s',
    },
    null,
    2,
  );
}

function kubeProxyConfig(kubeconfig: string, ports: { healthz: number; metrics: number }): string {
  return JSON.stringify(
    {
      apiVersion: 'kubeproxy.config.k8s.io/v1alpha1',
      kind: 'KubeProxyConfiguration',
      mode: 'iptables',
      hostnameOverride: NODE_NAME,
      clusterCIDR: POD_CIDR,
      clientConnection: { kubeconfig },
      healthzBindAddress: `127.0.0.1:${ports.healthz}`,
      metricsBindAddress: `127.0.0.1:${ports.metrics}`,
      // Leave the host's conntrack sysctls and route_localnet alone.
      conntrack: { maxPerCore: 0, min: 0, tcpEstablishedTimeout: '0s', tcpCloseWaitTimeout: '0s' },
      iptables: { localhostNodePorts: false, syncPeriod: '30s', minSyncPeriod: '0s' },
      nodePortAddresses: ['primary'],
    },
    null,
    2,
  );
}

function corefile(nodeIp: string, port: number, kubeconfig: string, healthPort: number): string {
  // No `forward`: names outside the cluster are not looked up anywhere (nothing leaves the machine).
  return `.:${port} {
  bind ${nodeIp}
  errors
  health 127.0.0.1:${healthPort}
  kubernetes cluster.local in-addr.arpa {
    kubeconfig ${kubeconfig}
    pods insecure
  }
  cache 5
}
`;
}

function registryConfig(dir: string, port: number): string {
  return `version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: ${dir}/registry
  delete:
    enabled: true
http:
  addr: 127.0.0.1:${port}
  secret: chaperone-test-env
`;
}

/** Builds (when missing) the node's OCI archives and returns their paths. */
async function buildNodeImages(): Promise<string[]> {
  const { stdout } = await run(join(tools, 'build-node-images.sh'), [join(cacheDir, 'images')], {
    maxBuffer: 1 << 20,
  });
  return stdout.trim().split('\n');
}

/**
 * Pushes the images of `make images` (images/build.ts) to the registry; {} when none are built.
 * CHAPERONE_IMAGES_DIR picks another build than the cache's (a worktree's own, say).
 */
async function pushChaperoneImages(registry: string): Promise<Record<string, string>> {
  const out = process.env.CHAPERONE_IMAGES_DIR ?? join(cacheDir, 'images', 'chaperone');
  const list = join(out, 'images.json');
  if (!existsSync(list)) return {};
  const images = JSON.parse(await readFile(list, 'utf8')) as { name: string; ref: string }[];
  const refs: Record<string, string> = {};
  await Promise.all(
    images.map(async (image) => {
      const ref = `${registry}/${image.ref}`;
      await run('skopeo', [
        'copy',
        '--quiet',
        '--dest-tls-verify=false',
        `oci:${join(out, 'chaperone.oci')}:${image.name}`,
        `docker://${ref}`,
      ]);
      refs[image.name] = ref;
    }),
  );
  return refs;
}

/** The image reference an OCI archive written by build-node-images.sh names. */
async function archiveRef(archive: string): Promise<string> {
  const { stdout } = await run('tar', ['-xOf', archive, 'index.json']);
  const index = JSON.parse(stdout) as { manifests: { annotations: Record<string, string> }[] };
  const ref = index.manifests[0]?.annotations['io.containerd.image.name'];
  if (!ref) throw new Error(`${archive}: no io.containerd.image.name`);
  return ref;
}

async function apiJson(
  kube: KubeInfo,
  trust: TlsTrust,
  path: string,
  init: Parameters<typeof httpsRequest>[2] = {},
) {
  const res = await httpsRequest(`${kube.server}${path}`, trust, init);
  return { status: res.status, body: res.body.toString('utf8') };
}

async function apply(kube: KubeInfo, trust: TlsTrust, path: string, object: unknown): Promise<void> {
  const res = await apiJson(kube, trust, path, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(object),
  });
  if (res.status !== 201 && res.status !== 409) {
    throw new Error(`node: POST ${path}: HTTP ${res.status} ${res.body.slice(0, 300)}`);
  }
}

export interface NodePkiMaterial {
  caPem: string;
  kubeletCertPem: string;
  kubeletKeyPem: string;
  adminCertPem: string;
  adminKeyPem: string;
}

/** Starts the node against a control plane started by kube.ts in node mode. */
export async function startNode(
  dir: string,
  kube: KubeInfo,
  pki: NodePkiMaterial,
  serviceCidr: string,
): Promise<RunningPart<NodeInfo>> {
  const t0 = performance.now();
  const { ip: nodeIp, dev } = nodeAddress();
  await mkdir(join(dir, 'pki'), { recursive: true, mode: 0o700 });
  for (const d of [
    'containerd/certs.d',
    'cni/net.d',
    'cni/ipam',
    'pod-logs',
    'kubelet',
    'registry',
    'logs',
  ]) {
    await mkdir(join(dir, d), { recursive: true });
  }
  await takeLock(dir);
  const snapshot = SYSCTL_SNAPSHOT;
  await snapshotSysctls(snapshot);
  const procs: ServerProcess[] = [];
  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    // kubelet first so it does not restart what is being torn down, containerd last.
    for (const p of [...procs].reverse()) await p.stop({ graceMs: 3000 });
    await hostCleanup(dir, snapshot);
    await rm(LOCK, { force: true });
    await rm(SYSCTL_SNAPSHOT, { force: true });
    await rm(dir, { recursive: true, force: true }).catch(() => {});
  };
  const log = (name: string) => join(dir, 'logs', `${name}.log`);
  const trust: TlsTrust = { ca: pki.caPem, cert: pki.adminCertPem, key: pki.adminKeyPem };
  try {
    const bin = {
      kubelet: requireBinary('kubelet'),
      kubeProxy: requireBinary('kubeProxy'),
      scheduler: requireBinary('kubeScheduler'),
      coredns: requireBinary('coredns'),
      registry: requireBinary('registry'),
      // NetworkPolicy enforcement: optional until its build is part of `make node-tools`.
      kubeRouter: existsSync(binaries.kubeRouter) ? binaries.kubeRouter : undefined,
    };
    const [
      kubeletPort,
      kubeletHealthz,
      proxyHealthz,
      proxyMetrics,
      dnsPort,
      dnsHealth,
      registryPort,
      routerHealth,
    ] = (await freePorts(8)) as [number, number, number, number, number, number, number, number];
    const registry = `127.0.0.1:${registryPort}`;
    const archives = await buildNodeImages();
    const refs = await Promise.all(archives.map(archiveRef));
    const sandboxImage = refs.find((r) => r.includes('/pause:'));
    const testImageLocal = refs.find((r) => r.includes('/busybox:'));
    if (!sandboxImage || !testImageLocal) throw new Error(`node: unexpected images ${refs.join(', ')}`);

    await Promise.all([
      writeFile(join(dir, 'pki', 'ca.crt'), pki.caPem),
      writeFile(join(dir, 'pki', 'kubelet.crt'), pki.kubeletCertPem),
      writeFile(join(dir, 'pki', 'kubelet.key'), pki.kubeletKeyPem, { mode: 0o600 }),
      copyFile(kube.kubeconfigPath, join(dir, 'kubeconfig')),
      writeFile(join(dir, 'resolv.conf'), ''),
      writeFile(join(dir, 'containerd.toml'), containerdConfig(dir, sandboxImage)),
      writeFile(join(dir, 'cni', 'net.d', '10-chaperone.conflist'), cniConfig(dir, 1400)),
      writeFile(
        join(dir, 'kubelet.json'),
        kubeletConfig(dir, nodeIp, { kubelet: kubeletPort, healthz: kubeletHealthz }),
      ),
      writeFile(
        join(dir, 'kube-proxy.json'),
        kubeProxyConfig(join(dir, 'kubeconfig'), { healthz: proxyHealthz, metrics: proxyMetrics }),
      ),
      writeFile(join(dir, 'Corefile'), corefile(nodeIp, dnsPort, join(dir, 'kubeconfig'), dnsHealth)),
      writeFile(join(dir, 'registry.yml'), registryConfig(dir, registryPort)),
      mkdir(join(dir, 'containerd', 'certs.d', registry), { recursive: true }).then(() =>
        writeFile(
          join(dir, 'containerd', 'certs.d', registry, 'hosts.toml'),
          `server = "http://${registry}"\n\n[host."http://${registry}"]\n  capabilities = ["pull", "resolve"]\n`,
        ),
      ),
    ]);
    await createCgroupRoot();
    const apiserverPort = Number(new URL(kube.server).port);
    await safetyNet(dev, serviceCidr, [apiserverPort, kubeletPort, dnsPort, routerHealth]);

    const containerd = startServerProcess(
      'containerd',
      '/usr/bin/containerd',
      ['--config', join(dir, 'containerd.toml')],
      log('containerd'),
    );
    procs.push(containerd);
    const reg = startServerProcess(
      'registry',
      bin.registry,
      ['serve', join(dir, 'registry.yml')],
      log('registry'),
    );
    procs.push(reg);
    const ctr = (...args: string[]) =>
      run(
        '/usr/bin/ctr',
        ['--address', join(dir, 'containerd', 'containerd.sock'), '-n', 'k8s.io', ...args],
        {
          maxBuffer: 4 << 20,
        },
      );
    await waitUntilReady(async () => (await ctr('version')).stdout.includes('Server'), {
      what: 'containerd',
      timeoutMs: 30_000,
      process: containerd,
    });
    for (const archive of archives) await ctr('images', 'import', '--no-unpack', archive);
    await waitUntilReady(async () => (await fetch(`http://${registry}/v2/`)).ok, {
      what: 'registry /v2/',
      timeoutMs: 30_000,
      process: reg,
    });
    // The test image goes through the registry: pods pull it like any image.
    const testImage = `${registry}/chaperone/busybox:${testImageLocal.split(':').pop()}`;
    const busyboxArchive = archives.find((a) => a.includes('/busybox-'))!;
    await run('skopeo', [
      'copy',
      '--quiet',
      '--dest-tls-verify=false',
      `oci-archive:${busyboxArchive}`,
      `docker://${testImage}`,
    ]);

    // Chaperone's images (`make images`), when built: pushed so pods pull them like in a cluster.
    const chaperoneImages = await pushChaperoneImages(registry);

    const kubelet = startServerProcess(
      'kubelet',
      bin.kubelet,
      [
        `--config=${join(dir, 'kubelet.json')}`,
        `--kubeconfig=${join(dir, 'kubeconfig')}`,
        `--root-dir=${join(dir, 'kubelet')}`,
        `--cert-dir=${join(dir, 'pki')}`,
        `--node-ip=${nodeIp}`,
        `--hostname-override=${NODE_NAME}`,
        '--v=1',
      ],
      log('kubelet'),
    );
    procs.push(kubelet);
    const scheduler = startServerProcess(
      'kube-scheduler',
      bin.scheduler,
      [
        `--kubeconfig=${join(dir, 'kubeconfig')}`,
        `--authentication-kubeconfig=${join(dir, 'kubeconfig')}`,
        `--authorization-kubeconfig=${join(dir, 'kubeconfig')}`,
        '--leader-elect=false',
        '--secure-port=0',
      ],
      log('kube-scheduler'),
    );
    procs.push(scheduler);
    const proxy = startServerProcess(
      'kube-proxy',
      bin.kubeProxy,
      [`--config=${join(dir, 'kube-proxy.json')}`],
      log('kube-proxy'),
    );
    procs.push(proxy);
    const coredns = startServerProcess(
      'coredns',
      bin.coredns,
      ['-conf', join(dir, 'Corefile')],
      log('coredns'),
    );
    procs.push(coredns);

    // Cluster DNS: a Service whose endpoint is CoreDNS on the node's address.
    await apply(kube, trust, '/api/v1/namespaces/kube-system/services', {
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name: 'kube-dns', namespace: 'kube-system', labels: { 'k8s-app': 'kube-dns' } },
      spec: {
        clusterIP: CLUSTER_DNS_IP,
        ports: [
          { name: 'dns', port: 53, protocol: 'UDP', targetPort: dnsPort },
          { name: 'dns-tcp', port: 53, protocol: 'TCP', targetPort: dnsPort },
        ],
      },
    });
    await apply(kube, trust, '/apis/discovery.k8s.io/v1/namespaces/kube-system/endpointslices', {
      apiVersion: 'discovery.k8s.io/v1',
      kind: 'EndpointSlice',
      metadata: {
        name: 'kube-dns-node',
        namespace: 'kube-system',
        labels: {
          'kubernetes.io/service-name': 'kube-dns',
          'endpointslice.kubernetes.io/managed-by': 'chaperone-test-env',
        },
      },
      addressType: 'IPv4',
      endpoints: [{ addresses: [nodeIp], conditions: { ready: true } }],
      ports: [
        { name: 'dns', port: dnsPort, protocol: 'UDP' },
        { name: 'dns-tcp', port: dnsPort, protocol: 'TCP' },
      ],
    });

    await waitUntilReady(
      async () => {
        const res = await apiJson(kube, trust, `/api/v1/nodes/${NODE_NAME}`);
        if (res.status !== 200) return false;
        const node = JSON.parse(res.body) as {
          spec?: { taints?: { key: string }[] };
          status?: { conditions?: { type: string; status: string }[] };
        };
        const ready = node.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True');
        // Schedulable: kube-controller-manager's nodelifecycle has removed the not-ready taint.
        const tainted = node.spec?.taints?.some((t) => t.key.startsWith('node.kubernetes.io/'));
        return Boolean(ready && !tainted);
      },
      {
        what: `node ${NODE_NAME} Ready and untainted`,
        timeoutMs: 120_000,
        process: kubelet,
        intervalMs: 250,
      },
    );
    // kube-router's policy controller keys pods by the node's pod CIDR (no nodeipam controller here).
    const podCidrPatch = await apiJson(kube, trust, `/api/v1/nodes/${NODE_NAME}`, {
      method: 'PATCH',
      headers: { 'content-type': 'application/merge-patch+json' },
      body: JSON.stringify({ spec: { podCIDR: POD_CIDR, podCIDRs: [POD_CIDR] } }),
    });
    if (podCidrPatch.status !== 200) throw new Error(`node: podCIDR patch: HTTP ${podCidrPatch.status}`);
    let networkPolicies = false;
    if (bin.kubeRouter) {
      const router = startServerProcess(
        'kube-router',
        bin.kubeRouter,
        [
          `--kubeconfig=${join(dir, 'kubeconfig')}`,
          `--hostname-override=${NODE_NAME}`,
          '--run-firewall=true',
          '--run-router=false',
          '--run-service-proxy=false',
          '--enable-cni=false',
          '--enable-ipv6=false',
          `--service-cluster-ip-range=${serviceCidr}`,
          `--health-port=${routerHealth}`,
          '--metrics-port=0',
          '--iptables-sync-period=1m',
          '--v=1',
        ],
        log('kube-router'),
      );
      procs.push(router);
      await waitUntilReady(async () => (await fetch(`http://127.0.0.1:${routerHealth}/healthz`)).ok, {
        what: 'kube-router /healthz',
        timeoutMs: 60_000,
        process: router,
      });
      networkPolicies = true;
    }
    await waitUntilReady(async () => (await fetch(`http://127.0.0.1:${proxyHealthz}/healthz`)).ok, {
      what: 'kube-proxy /healthz',
      timeoutMs: 60_000,
      process: proxy,
    });
    await waitUntilReady(async () => (await fetch(`http://127.0.0.1:${dnsHealth}/health`)).ok, {
      what: 'CoreDNS /health',
      timeoutMs: 30_000,
      process: coredns,
    });

    const info: NodeInfo = {
      name: NODE_NAME,
      ip: nodeIp,
      podCidr: POD_CIDR,
      serviceCidr,
      clusterDnsIp: CLUSTER_DNS_IP,
      registry,
      testImage,
      chaperoneImages,
      networkPolicies,
      sandboxImage,
      containerdAddress: join(dir, 'containerd', 'containerd.sock'),
      logDir: join(dir, 'logs'),
      dataDir: dir,
      startupMs: Math.round(performance.now() - t0),
    };
    return { info, stop };
  } catch (error) {
    await stop();
    throw error;
  }
}
