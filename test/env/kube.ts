// A real Kubernetes control plane for tests, envtest style: etcd, kube-apiserver and
// kube-controller-manager on 127.0.0.1 with random ports, a PKI generated per start, and an admin
// kubeconfig. No kubelet or scheduler: pods are admitted (webhooks run) but never run.
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { requireBinary } from './binaries.ts';
import { generateControlPlanePki } from './kube-certs.ts';
import { httpsRequest, type TlsTrust } from './kube-fetch.ts';
import { renderKubeconfig } from './kube-kubeconfig.ts';
import {
  freePorts,
  type ServerProcess,
  type StopOptions,
  startServerProcess,
  waitUntilReady,
} from './kube-process.ts';
import type { NodePkiMaterial } from './node.ts';
import type { RunningPart } from './part.ts';
import type { KubeInfo, NodeInfo } from './types.ts';

export { kubeConfigFor } from './kube-kubeconfig.ts';

/** The Service CIDR; its first address is the `kubernetes` Service. */
export const SERVICE_CLUSTER_IP_RANGE = '10.0.0.0/24';
const kubernetesServiceIp = '10.0.0.1';

/** ClusterRoleBinding that lets anyone read the service-account issuer's OIDC discovery and JWKS. */
export const ANONYMOUS_DISCOVERY_BINDING = 'chaperone-test-env:anonymous-oidc-discovery';

const etcdStartTimeoutMs = 30_000;
const apiserverStartTimeoutMs = 90_000;
const controllerManagerStartTimeoutMs = 60_000;

/** Controllers of kube-controller-manager the tests rely on (everything else stays off). */
export const CONTROLLERS = [
  'namespace', // deletes a namespace's content, then the namespace
  'garbagecollector', // deletes dependents once their owners are gone
  'serviceaccount', // creates the `default` ServiceAccount in each namespace
  'serviceaccount-token', // fills legacy service-account token Secrets
  'root-ca-cert-publisher', // kube-root-ca.crt ConfigMap, referenced by projected token volumes
  'clusterrole-aggregation', // aggregated ClusterRoles (admin/edit/view) that charts may extend
  'job', // creates the pods of Jobs (attribution: the launcher stamp travels Job -> Pod)
];

/** Controllers added when a real node runs pods (node.ts): workloads and Service endpoints. */
export const NODE_CONTROLLERS = [
  'endpointslice',
  'endpointslicemirroring',
  'deployment',
  'replicaset',
  'job',
  'statefulset',
  'daemonset',
  'podgc',
  // Removes the node.kubernetes.io/not-ready taint kubelet registers with, once the node is Ready.
  'nodelifecycle',
];

/** Control-plane settings for a real node (node.ts) on this machine. */
export interface NodeMode {
  /** The node's non-loopback address: the apiserver advertises it (the kubernetes Service). */
  ip: string;
  nodeName: string;
}

export interface KubeOptions {
  node?: NodeMode;
}

export interface KubeControlPlane extends RunningPart<KubeInfo> {
  /** Log files of the three servers (stdout and stderr). */
  logs: { etcd: string; apiserver: string; controllerManager: string };
  /** How long each start-up phase took, in milliseconds (for diagnosing slow starts). */
  startupMs: { etcd: number; apiserver: number; controllerManager: number; total: number };
  /** Stops kube-apiserver only (SIGTERM by default; pass `{ signal: 'SIGKILL' }` for a crash). */
  stopApiserver(options?: StopOptions): Promise<void>;
  /** Starts kube-apiserver again on the same port with the same PKI and waits for /readyz. */
  startApiserver(): Promise<void>;
  /** stopApiserver then startApiserver: etcd keeps the state, clients see a short outage. */
  restartApiserver(options?: StopOptions): Promise<void>;
  /** In node mode: the CA, the admin client cert and the kubelet serving cert. */
  nodePki?: NodePkiMaterial;
}

interface Paths {
  pki: string;
  etcdData: string;
  kubeconfig: string;
  caCert: string;
  apiserverCert: string;
  apiserverKey: string;
  saKey: string;
  saPub: string;
  adminCert: string;
  adminKey: string;
}

function pathsUnder(dir: string): Paths {
  const pki = join(dir, 'pki');
  return {
    pki,
    etcdData: join(dir, 'etcd'),
    kubeconfig: join(dir, 'kubeconfig'),
    caCert: join(pki, 'ca.crt'),
    apiserverCert: join(pki, 'apiserver.crt'),
    apiserverKey: join(pki, 'apiserver.key'),
    saKey: join(pki, 'service-account.key'),
    saPub: join(pki, 'service-account.pub'),
    adminCert: join(pki, 'admin.crt'),
    adminKey: join(pki, 'admin.key'),
  };
}

function etcdArgs(paths: Paths, clientPort: number, peerPort: number): string[] {
  const client = `http://127.0.0.1:${clientPort}`;
  const peer = `http://127.0.0.1:${peerPort}`;
  return [
    '--name=default',
    `--data-dir=${paths.etcdData}`,
    `--listen-client-urls=${client}`,
    `--advertise-client-urls=${client}`,
    `--listen-peer-urls=${peer}`,
    `--initial-advertise-peer-urls=${peer}`,
    `--initial-cluster=default=${peer}`,
    // Throwaway data: skipping fsync makes every apiserver write much cheaper (envtest does the same).
    '--unsafe-no-fsync=true',
    // A single member never loses its leader, so a short election timeout only speeds up the
    // first election (about 1 s with the defaults).
    '--heartbeat-interval=25',
    '--election-timeout=250',
    '--log-level=warn',
  ];
}

function apiserverArgs(
  paths: Paths,
  server: string,
  port: number,
  etcdClientPort: number,
  node?: NodeMode,
): string[] {
  const args = [
    '--advertise-address=127.0.0.1',
    '--bind-address=127.0.0.1',
    `--secure-port=${port}`,
    `--cert-dir=${paths.pki}`,
    `--tls-cert-file=${paths.apiserverCert}`,
    `--tls-private-key-file=${paths.apiserverKey}`,
    `--client-ca-file=${paths.caCert}`,
    '--authorization-mode=RBAC',
    `--etcd-servers=http://127.0.0.1:${etcdClientPort}`,
    `--service-cluster-ip-range=${SERVICE_CLUSTER_IP_RANGE}`,
    // The apiserver is its own OIDC issuer: it serves /.well-known/openid-configuration and
    // /openid/v1/jwks at this URL, so token validators can discover it like a real cluster's.
    `--service-account-issuer=${server}`,
    `--service-account-jwks-uri=${server}/openid/v1/jwks`,
    `--service-account-key-file=${paths.saPub}`,
    `--service-account-signing-key-file=${paths.saKey}`,
    // Tests check that the webhook refuses privileged agents; the apiserver must not refuse first.
    '--allow-privileged=true',
    // The lease reconciler would publish 127.0.0.1 as the kubernetes Service's endpoint, which
    // Endpoints validation rejects (loopback) every 10 s; nothing in-cluster dials it anyway.
    '--endpoint-reconciler-type=none',
    '--profiling=false',
    // On SIGTERM, end open watches (the controller manager's) within 2 s; otherwise the HTTP
    // server waits the whole request timeout (60 s) for those connections before exiting.
    '--shutdown-watch-termination-grace-period=2s',
  ];
  if (!node) return args;
  // A real node: pods reach the apiserver through the kubernetes Service, whose endpoint is the
  // node's address (loopback is refused as an endpoint), and the apiserver reaches kubelet for
  // logs and exec with a client cert, verifying kubelet's serving cert.
  const replaced = args
    .filter((a) => !a.startsWith('--endpoint-reconciler-type') && !a.startsWith('--advertise-address'))
    .map((a) => (a.startsWith('--bind-address') ? '--bind-address=0.0.0.0' : a));
  return [
    ...replaced,
    `--advertise-address=${node.ip}`,
    '--endpoint-reconciler-type=lease',
    `--kubelet-client-certificate=${paths.adminCert}`,
    `--kubelet-client-key=${paths.adminKey}`,
    `--kubelet-certificate-authority=${paths.caCert}`,
    '--kubelet-preferred-address-types=InternalIP',
  ];
}

function controllerManagerArgs(paths: Paths, node?: NodeMode): string[] {
  const controllers = node ? [...CONTROLLERS, ...NODE_CONTROLLERS] : CONTROLLERS;
  return [
    `--kubeconfig=${paths.kubeconfig}`,
    `--controllers=${controllers.join(',')}`,
    '--leader-elect=false',
    '--use-service-account-credentials=false',
    // No health/metrics endpoint needed: readiness is judged by the default ServiceAccount.
    '--secure-port=0',
    `--service-account-private-key-file=${paths.saKey}`,
    `--root-ca-file=${paths.caCert}`,
  ];
}

async function etcdHealthy(clientPort: number): Promise<boolean> {
  const res = await fetch(`http://127.0.0.1:${clientPort}/health`, { signal: AbortSignal.timeout(2000) });
  if (!res.ok) throw new Error(`etcd /health: HTTP ${res.status}`);
  const body = (await res.json()) as { health?: string };
  return body.health === 'true';
}

async function expectStatus(
  url: string,
  trust: TlsTrust,
  okStatuses: number[],
  init: Parameters<typeof httpsRequest>[2] = {},
) {
  const res = await httpsRequest(url, trust, init);
  if (!okStatuses.includes(res.status)) {
    throw new Error(
      `${init.method ?? 'GET'} ${url}: HTTP ${res.status} ${res.body.toString('utf8').slice(0, 300)}`,
    );
  }
  return res;
}

/** Starts etcd, kube-apiserver and kube-controller-manager with their state under `dir`. */
export async function startKubeControlPlane(
  dir: string,
  options: KubeOptions = {},
): Promise<KubeControlPlane> {
  // Ports are reserved and released before the servers bind them, so another process can take
  // one in between; that start fails with "address already in use" and is retried afresh.
  for (let attempt = 1; ; attempt++) {
    try {
      return await startOnce(dir, options);
    } catch (error) {
      const portTaken = error instanceof Error && /address already in use/.test(error.message);
      if (!portTaken || attempt >= 3) throw error;
      await rm(dir, { recursive: true, force: true });
    }
  }
}

async function startOnce(dir: string, { node }: KubeOptions): Promise<KubeControlPlane> {
  const bin = {
    etcd: requireBinary('etcd'),
    apiserver: requireBinary('kubeApiserver'),
    controllerManager: requireBinary('kubeControllerManager'),
    kubectl: requireBinary('kubectl'),
    helm: requireBinary('helm'),
  };
  const paths = pathsUnder(dir);
  await mkdir(paths.pki, { recursive: true, mode: 0o700 });
  const logs = {
    etcd: join(dir, 'etcd.log'),
    apiserver: join(dir, 'kube-apiserver.log'),
    controllerManager: join(dir, 'kube-controller-manager.log'),
  };
  const [etcdClientPort, etcdPeerPort, apiserverPort] = (await freePorts(3)) as [number, number, number];
  const server = `https://127.0.0.1:${apiserverPort}`;
  const t0 = performance.now();
  const startupMs = { etcd: 0, apiserver: 0, controllerManager: 0, total: 0 };

  let etcd: ServerProcess | undefined;
  let apiserver: ServerProcess | undefined;
  let controllerManager: ServerProcess | undefined;
  let stopped = false;
  const stopAll = async () => {
    // Clients first, so the apiserver is not kept busy by watches while it drains.
    await controllerManager?.stop();
    await apiserver?.stop({ graceMs: 10_000 });
    await etcd?.stop();
  };

  try {
    etcd = startServerProcess('etcd', bin.etcd, etcdArgs(paths, etcdClientPort, etcdPeerPort), logs.etcd);
    // The PKI is generated while etcd starts.
    const pki = await generateControlPlanePki({
      extraIps: node ? [kubernetesServiceIp, node.ip] : [kubernetesServiceIp],
      ...(node ? { kubeletServing: { nodeName: node.nodeName, ips: [node.ip] } } : {}),
    });
    const trust: TlsTrust = { ca: pki.ca.certPem, cert: pki.admin.certPem, key: pki.admin.keyPem };
    await Promise.all([
      writeFile(paths.caCert, pki.ca.certPem),
      writeFile(paths.apiserverCert, pki.apiserver.certPem),
      writeFile(paths.apiserverKey, pki.apiserver.keyPem, { mode: 0o600 }),
      writeFile(paths.saKey, pki.serviceAccountKeyPem, { mode: 0o600 }),
      writeFile(paths.saPub, pki.serviceAccountPublicKeyPem),
      writeFile(paths.adminCert, pki.admin.certPem),
      writeFile(paths.adminKey, pki.admin.keyPem, { mode: 0o600 }),
      writeFile(
        paths.kubeconfig,
        renderKubeconfig({
          server,
          caPem: pki.ca.certPem,
          clientCertPem: pki.admin.certPem,
          clientKeyPem: pki.admin.keyPem,
        }),
        { mode: 0o600 },
      ),
    ]);
    const etcdProcess = etcd;
    await waitUntilReady(() => etcdHealthy(etcdClientPort), {
      what: 'etcd /health',
      timeoutMs: etcdStartTimeoutMs,
      process: etcdProcess,
    });
    startupMs.etcd = Math.round(performance.now() - t0);

    const startApiserver = async () => {
      const proc = startServerProcess(
        'kube-apiserver',
        bin.apiserver,
        apiserverArgs(paths, server, apiserverPort, etcdClientPort, node),
        logs.apiserver,
      );
      apiserver = proc;
      await waitUntilReady(
        async () => (await httpsRequest(`${server}/readyz`, trust, { timeoutMs: 2000 })).status === 200,
        {
          what: 'kube-apiserver /readyz',
          timeoutMs: apiserverStartTimeoutMs,
          process: proc,
          intervalMs: 200,
        },
      );
    };
    await startApiserver();
    startupMs.apiserver = Math.round(performance.now() - t0) - startupMs.etcd;

    // Anonymous read of OIDC discovery, as managed clusters allow: validators in tests (and a
    // sidecar without credentials) fetch the issuer's keys like any OIDC relying party.
    await expectStatus(`${server}/apis/rbac.authorization.k8s.io/v1/clusterrolebindings`, trust, [201], {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        apiVersion: 'rbac.authorization.k8s.io/v1',
        kind: 'ClusterRoleBinding',
        metadata: { name: ANONYMOUS_DISCOVERY_BINDING },
        roleRef: {
          apiGroup: 'rbac.authorization.k8s.io',
          kind: 'ClusterRole',
          name: 'system:service-account-issuer-discovery',
        },
        subjects: [{ apiGroup: 'rbac.authorization.k8s.io', kind: 'Group', name: 'system:unauthenticated' }],
      }),
    });

    const kcm = startServerProcess(
      'kube-controller-manager',
      bin.controllerManager,
      controllerManagerArgs(paths, node),
      logs.controllerManager,
    );
    controllerManager = kcm;
    await waitUntilReady(
      async () =>
        (await httpsRequest(`${server}/api/v1/namespaces/default/serviceaccounts/default`, trust)).status ===
        200,
      {
        what: 'kube-controller-manager to create the default ServiceAccount',
        timeoutMs: controllerManagerStartTimeoutMs,
        process: kcm,
        intervalMs: 100,
      },
    );

    startupMs.total = Math.round(performance.now() - t0);
    startupMs.controllerManager = startupMs.total - startupMs.etcd - startupMs.apiserver;

    const info: KubeInfo = {
      server,
      kubeconfigPath: paths.kubeconfig,
      caPem: pki.ca.certPem,
      serviceAccountIssuer: server,
      kubectl: bin.kubectl,
      helm: bin.helm,
      dataDir: dir,
    };
    const stopApiserver = async (options?: StopOptions) => {
      await apiserver?.stop({ graceMs: 10_000, ...options });
    };
    const nodePki: NodePkiMaterial | undefined = pki.kubelet
      ? {
          caPem: pki.ca.certPem,
          adminCertPem: pki.admin.certPem,
          adminKeyPem: pki.admin.keyPem,
          kubeletCertPem: pki.kubelet.certPem,
          kubeletKeyPem: pki.kubelet.keyPem,
        }
      : undefined;
    return {
      info,
      logs,
      startupMs,
      ...(nodePki ? { nodePki } : {}),
      stopApiserver,
      startApiserver: async () => {
        if (apiserver && !apiserver.exitStatus) throw new Error('kube-apiserver is already running');
        await startApiserver();
      },
      restartApiserver: async (options?: StopOptions) => {
        await stopApiserver(options);
        await startApiserver();
      },
      async stop() {
        if (stopped) return;
        stopped = true;
        await stopAll();
        await rm(dir, { recursive: true, force: true });
      },
    };
  } catch (error) {
    await stopAll();
    throw error;
  }
}

/** Starts the real kube control plane on 127.0.0.1 with its state under `dir`. */
export async function startKube(dir: string): Promise<RunningPart<KubeInfo>> {
  const plane = await startKubeControlPlane(dir);
  return { info: plane.info, stop: () => plane.stop() };
}

/** The control plane in node mode, then the real node joined to it (parts `kube` + `node`). */
export async function startKubeWithNode(
  dir: string,
  nodeDir: string,
): Promise<{ kube: RunningPart<KubeInfo>; node: RunningPart<NodeInfo> }> {
  const { nodeAddress, startNode, NODE_NAME } = await import('./node.ts');
  const plane = await startKubeControlPlane(dir, { node: { ip: nodeAddress().ip, nodeName: NODE_NAME } });
  try {
    const node = await startNode(nodeDir, plane.info, plane.nodePki!, SERVICE_CLUSTER_IP_RANGE);
    return { kube: { info: plane.info, stop: () => plane.stop() }, node };
  } catch (error) {
    await plane.stop();
    throw error;
  }
}
