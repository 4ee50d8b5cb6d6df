// Building blocks of the agent story on the real node (test/env/node.ts), shared by `make demo`
// (test/e2e/demo-story.ts), its e2e test and the chart's tests on the node (test/chart/): the chart
// pushed to the node's registry and installed from oci:// with helm, the node's view of the
// test environment's servers, the orders database, the SessionPolicy and the agent Job.
//
// PostgreSQL and MinIO of the test environment listen on 127.0.0.1, which pods cannot reach:
// `exposeOnNode` relays each from the node's address (a TCP relay in this process), refused from the
// uplink by a rule in the node's inbound chain, so only pods and this host use it.
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { stringify } from 'yaml';
import { requireBinary } from '../../env/binaries.ts';
import { NODE_TOLERATION, nodeAddress } from '../../env/node.ts';
import { psql as adminPsql, createRole } from '../../env/postgres.ts';
import type { KubeInfo, MinioInfo, NodeInfo, PostgresInfo } from '../../env/types.ts';

const exec = promisify(execFile);
export const REPO = join(import.meta.dirname, '..', '..', '..');
export const CHART_DIR = join(REPO, 'charts', 'chaperone');
export const CARD = '4111 1111 1111 1111';
const INBOUND_CHAIN = 'CHAPERONE-NODE-INBOUND';

export interface CommandResult {
  code: number;
  stdout: string;
  stderr: string;
}

async function runCommand(
  file: string,
  args: string[],
  options: { input?: string; env?: NodeJS.ProcessEnv } = {},
): Promise<CommandResult> {
  const run = exec(file, args, { maxBuffer: 64 << 20, env: options.env ?? process.env });
  if (options.input !== undefined) run.child.stdin?.end(options.input);
  try {
    const { stdout, stderr } = await run;
    return { code: 0, stdout, stderr };
  } catch (error) {
    const e = error as { code?: number | string; stdout?: string; stderr?: string; message: string };
    return {
      code: typeof e.code === 'number' ? e.code : 1,
      stdout: e.stdout ?? '',
      stderr: e.stderr || e.message,
    };
  }
}

/** kubectl against the test cluster; throws with its stderr when it fails. */
export function kubectlFor(kube: KubeInfo) {
  return async (args: string[], input?: string): Promise<string> => {
    const r = await runCommand(kube.kubectl, [`--kubeconfig=${kube.kubeconfigPath}`, ...args], { input });
    if (r.code !== 0) throw new Error(`kubectl ${args.join(' ')} failed: ${r.stderr.trim()}`);
    return r.stdout;
  };
}

/** helm (the cached binary) against the test cluster, with no repository config of the user's. */
export function helmFor(kube: KubeInfo) {
  return (args: string[]): Promise<CommandResult> =>
    runCommand(requireBinary('helm'), [...args, `--kubeconfig=${kube.kubeconfigPath}`], {
      env: {
        ...process.env,
        HELM_CACHE_HOME: '/tmp/chaperone-helm/cache',
        HELM_CONFIG_HOME: '/tmp/chaperone-helm/config',
        HELM_DATA_HOME: '/tmp/chaperone-helm/data',
      },
    });
}

/** The chart's version from Chart.yaml. */
export async function chartVersion(): Promise<string> {
  const { stdout } = await exec('sed', ['-n', 's/^version: *//p', join(CHART_DIR, 'Chart.yaml')]);
  return stdout.trim();
}

/**
 * `helm package` + `helm push` of charts/chaperone to the node's registry (plain HTTP on loopback),
 * as a release pipeline publishes it; returns the oci:// reference users install from.
 */
export async function pushChart(kube: KubeInfo, node: NodeInfo): Promise<{ ref: string; version: string }> {
  const helm = helmFor(kube);
  const dir = await mkdtemp(join(tmpdir(), 'chaperone-chart-'));
  try {
    const pkg = await helm(['package', CHART_DIR, '--destination', dir]);
    if (pkg.code !== 0) throw new Error(`helm package: ${pkg.stderr}`);
    const version = await chartVersion();
    const repo = `oci://${node.registry}/charts`;
    const push = await helm(['push', join(dir, `chaperone-${version}.tgz`), repo, '--plain-http']);
    if (push.code !== 0) throw new Error(`helm push: ${push.stderr}`);
    return { ref: `${repo}/chaperone`, version };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** A server of the test environment (on loopback) seen from pods: a port on the node's address. */
export interface NodeExposed {
  port: number;
  close(): Promise<void>;
}

/** Relays `node.ip:<port>` to `127.0.0.1:<target>`; the uplink is refused by an inbound rule. */
export async function exposeOnNode(node: NodeInfo, target: number): Promise<NodeExposed> {
  const server = createServer((client) => {
    const upstream = connect({ host: '127.0.0.1', port: target });
    client.pipe(upstream).pipe(client);
    const close = () => {
      client.destroy();
      upstream.destroy();
    };
    client.on('error', close);
    upstream.on('error', close);
  });
  await new Promise<void>((resolve) => server.listen(0, node.ip, resolve));
  const port = (server.address() as { port: number }).port;
  const rule = [INBOUND_CHAIN, '-i', nodeAddress().dev, '-p', 'tcp', '--dport', String(port), '-j', 'DROP'];
  await exec('iptables', ['-w', '-I', ...rule]);
  return {
    port,
    close: async () => {
      server.close();
      await exec('iptables', ['-w', '-D', ...rule]).catch(() => {});
    },
  };
}

/** The user kube-controller-manager creates pods as (the test environment's admin user). */
export async function controllerUser(kube: KubeInfo): Promise<string> {
  const out = await kubectlFor(kube)(['auth', 'whoami', '-o', 'json']);
  return (JSON.parse(out) as { status: { userInfo: { username: string } } }).status.userInfo.username;
}

export interface NodeValuesOptions {
  kube: KubeInfo;
  node: NodeInfo;
  /** Node ports of the S3 store the operator and the sidecars reach. */
  storagePort: number;
  /** kube-controller-manager's user (the test environment has no per-controller accounts). */
  controllerUser: string;
  webhookReplicas?: number;
  operatorReplicas?: number;
}

/** Values that fit the chart to the test node; everything else is the chart's default. */
export function nodeValues(o: NodeValuesOptions): Record<string, unknown> {
  const apiPort = Number(new URL(o.kube.server).port);
  const [, tag] = (o.node.chaperoneImages.webhook ?? '').split(/:(?=[^:/]+$)/);
  return {
    image: { registry: `${o.node.registry}/chaperone`, tag: tag ?? '' },
    operator: {
      replicas: o.operatorReplicas ?? 1,
      tolerations: [NODE_TOLERATION],
      // Agent pods reach the apiserver through the kubernetes Service: after DNAT, the node's address.
      extraConfig: { networkPolicy: { apiServer: [{ host: o.node.ip, port: apiPort }] } },
    },
    webhook: {
      replicas: o.webhookReplicas ?? 2,
      tolerations: [NODE_TOLERATION],
      // The test environment's kube-controller-manager creates Job pods as the admin user.
      extraConfig: { templateControllers: [o.controllerUser] },
    },
    helmTest: { tolerations: [NODE_TOLERATION] },
    // Not the chart's defaults (the sidecar runs within the default 512Mi since --liftoff-only): the
    // upgrade test changes one field of these and the rollback test expects them back.
    sidecar: { resources: { requests: { cpu: '50m', memory: '64Mi' }, limits: { memory: '1Gi' } } },
    networkPolicy: { apiServerPorts: [443, apiPort], storagePorts: [443, o.storagePort] },
  };
}

export interface ReleaseOptions {
  kube: KubeInfo;
  release: string;
  namespace: string;
  chart: { ref: string; version: string };
  values: Record<string, unknown>;
  workDir: string;
  timeout?: string;
}

/** The CRDs the chart installs as templates (charts/chaperone/templates/crds). */
const CHART_CRDS = ['sessionpolicies.chaperone.dev', 'sessionapprovals.chaperone.dev'];

/**
 * Hands CRDs applied earlier with kubectl (other tests of the shared suite apply crds/*.yaml) to the
 * release, as docs/install.md tells users who move from kubectl to helm: helm refuses to install
 * over objects it does not own.
 */
export async function adoptCrds(kube: KubeInfo, release: string, namespace: string): Promise<void> {
  const kubectl = kubectlFor(kube);
  for (const crd of CHART_CRDS) {
    const found = await kubectl(['get', 'crd', crd, '--ignore-not-found', '-o', 'name']);
    if (!found.trim()) continue;
    await kubectl(['label', 'crd', crd, 'app.kubernetes.io/managed-by=Helm', '--overwrite']);
    await kubectl([
      'annotate',
      'crd',
      crd,
      `meta.helm.sh/release-name=${release}`,
      `meta.helm.sh/release-namespace=${namespace}`,
      '--overwrite',
    ]);
  }
}

/** `helm install|upgrade` from the registry with values written to a file; --wait for Ready pods. */
export async function helmRelease(
  verb: 'install' | 'upgrade',
  o: ReleaseOptions,
  extra: string[] = [],
): Promise<CommandResult & { command: string; valuesFile: string }> {
  if (verb === 'install') await adoptCrds(o.kube, o.release, o.namespace);
  const valuesFile = join(o.workDir, `values-${verb}-${randomBytes(2).toString('hex')}.yaml`);
  await writeFile(valuesFile, stringify(o.values));
  const args = [
    verb,
    o.release,
    o.chart.ref,
    '--version',
    o.chart.version,
    '--plain-http',
    '--namespace',
    o.namespace,
    ...(verb === 'install' ? ['--create-namespace'] : []),
    '-f',
    valuesFile,
    '--wait',
    '--timeout',
    o.timeout ?? '5m',
    ...extra,
  ];
  const r = await helmFor(o.kube)(args);
  return { ...r, command: `helm ${args.join(' ')}`, valuesFile };
}

export interface OrdersDatabase {
  name: string;
  user: string;
  password: string;
}

/** A database `orders_<id>` with a customer's card number, owned by a role only a Secret names. */
export async function createOrdersDatabase(postgres: PostgresInfo, id: string): Promise<OrdersDatabase> {
  const db = { name: `orders_${id}`, user: `orders_app_${id}`, password: randomBytes(12).toString('hex') };
  await createRole(postgres, { name: db.user, password: db.password, method: 'scram' });
  await adminPsql(postgres, `CREATE DATABASE ${db.name} OWNER ${db.user}`);
  await adminPsql(
    { ...postgres, database: db.name },
    `SET ROLE ${db.user};
     CREATE TABLE customers (id int PRIMARY KEY, name text NOT NULL, card_number text);
     INSERT INTO customers VALUES (1, 'Ada Lovelace', '${CARD}'), (2, 'Alan Turing', NULL);`,
  );
  return db;
}

export async function dropOrdersDatabase(postgres: PostgresInfo, db: OrdersDatabase): Promise<void> {
  await adminPsql(postgres, `DROP DATABASE IF EXISTS ${db.name} WITH (FORCE)`);
  await adminPsql(postgres, `DROP ROLE IF EXISTS ${db.user}`);
}

export interface PolicyOptions {
  namespace: string;
  kube: KubeInfo;
  node: NodeInfo;
  minio: MinioInfo;
  db: OrdersDatabase;
  /** The node ports relaying PostgreSQL and MinIO. */
  pgPort: number;
  s3Port: number;
  bucket: string;
  prefix: string;
  signingKeyPem: string;
}

export const POLICY_NAME = 'orders-agents';
export const AGENT_LABELS = { app: 'report-agent' };
export const AGENT_SERVICE_ACCOUNT = 'report-agent';

/** Waits (kubectl wait) until the operator reports the story's SessionPolicy Ready. */
export function policyReady(
  kubectl: ReturnType<typeof kubectlFor>,
  namespace: string,
  timeout = '120s',
): Promise<string> {
  return kubectl([
    'wait',
    '-n',
    namespace,
    `sessionpolicy/${POLICY_NAME}`,
    '--for=condition=Ready',
    `--timeout=${timeout}`,
  ]);
}

/**
 * What the platform team applies in the agents' namespace: the agent's ServiceAccount, the Secrets
 * only the sidecar mounts (database login, S3 keys, signing key) and the SessionPolicy: a Postgres
 * target, service-account tokens required, a DROP/TRUNCATE guardrail, card-number masking, and
 * recording to MinIO with Object Lock.
 */
export function agentNamespaceObjects(o: PolicyOptions): Record<string, unknown>[] {
  const apiPort = Number(new URL(o.kube.server).port);
  const secret = (name: string, stringData: Record<string, string>) => ({
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: { name, namespace: o.namespace },
    stringData,
  });
  return [
    {
      apiVersion: 'v1',
      kind: 'ServiceAccount',
      metadata: { name: AGENT_SERVICE_ACCOUNT, namespace: o.namespace },
    },
    secret('orders-db-credentials', { username: o.db.user, password: o.db.password }),
    secret('recordings-s3', { accessKeyId: o.minio.accessKeyId, secretAccessKey: o.minio.secretAccessKey }),
    secret('recording-signing-key', { privateKey: o.signingKeyPem }),
    {
      apiVersion: 'chaperone.dev/v1alpha1',
      kind: 'SessionPolicy',
      metadata: { name: POLICY_NAME, namespace: o.namespace },
      spec: {
        podSelector: { matchLabels: AGENT_LABELS },
        targets: [
          {
            name: 'orders-db',
            protocol: 'postgres',
            upstream: { host: o.node.ip, port: o.pgPort, database: o.db.name },
            listenPort: 15432,
            credentialsSecret: { name: 'orders-db-credentials' },
          },
        ],
        identity: {
          tokenRequired: true,
          issuers: [
            {
              issuer: o.kube.serviceAccountIssuer,
              audiences: ['chaperone'],
              jwksUri: `https://${o.node.ip}:${apiPort}/openid/v1/jwks`,
              kubernetes: true,
            },
          ],
        },
        guardrails: [
          {
            name: 'no-drop',
            match: { sqlClasses: ['drop', 'truncate'] },
            action: 'block',
            message: 'dropping or truncating tables is not allowed for agents',
          },
        ],
        masking: { detectors: [{ type: 'creditCard' }] },
        recording: {
          store: {
            url: `s3://${o.bucket}/${o.prefix}`,
            endpoint: `http://${o.node.ip}:${o.s3Port}`,
            region: o.minio.region,
            forcePathStyle: true,
            credentialsSecret: { name: 'recordings-s3' },
          },
          signingKeySecret: { name: 'recording-signing-key' },
          retentionDays: 7,
          objectLock: { mode: 'GOVERNANCE' },
        },
      },
    },
  ];
}

/**
 * The agent: Node (the cli image's) speaking the PostgreSQL wire protocol with the project's
 * production `pg-protocol` serializer, told only PGHOST/PGPORT and its token file, as psql would be.
 * Prints `--- name` sections: what each session returned, or how it failed. With HOLD_SECONDS set it
 * first holds one session open that long, running a statement every 200 ms (a session running
 * while the cluster changes), and prints `--- held` with the count of answers and errors.
 */
export const AGENT_SCRIPT = String.raw`
const net = require('node:net');
const fs = require('node:fs');
const { serialize } = require('/app/node_modules/pg-protocol/dist/serializer.js');
const token = fs.readFileSync(process.env.CHAPERONE_TOKEN_FILE, 'utf8').trim();
function session(host, port, sqls, timeoutMs = 10000) {
  return new Promise((resolve) => {
    const out = [];
    let buf = Buffer.alloc(0);
    let next = 0;
    const done = (s) => { clearTimeout(timer); sock.destroy(); resolve(out.concat(s ? [s] : []).join('\n')); };
    const timer = setTimeout(() => done('timeout'), timeoutMs);
    const sock = net.connect({ host, port });
    sock.on('connect', () => sock.write(serialize.startup({ user: 'report-agent', database: process.env.DB })));
    sock.on('error', (e) => done('error ' + e.code));
    sock.on('close', () => done('closed'));
    sock.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      while (buf.length >= 5 && buf.length >= 1 + buf.readInt32BE(1)) {
        const type = String.fromCharCode(buf[0]);
        const body = buf.subarray(5, 1 + buf.readInt32BE(1));
        buf = buf.subarray(1 + buf.readInt32BE(1));
        if (type === 'R' && body.readInt32BE(0) === 3) sock.write(serialize.password(token));
        else if (type === 'R' && body.readInt32BE(0) !== 0) out.push('auth ' + body.readInt32BE(0));
        else if (type === 'D') {
          const cols = [];
          for (let i = 0, n = body.readInt16BE(0), o = 2; i < n; i++) {
            const len = body.readInt32BE(o);
            o += 4;
            cols.push(len < 0 ? 'NULL' : body.subarray(o, o + len).toString());
            if (len > 0) o += len;
          }
          out.push('row ' + cols.join('|'));
        } else if (type === 'E') {
          const m = body.toString().split('\0').find((f) => f.startsWith('M'));
          out.push('error ' + (m ? m.slice(1) : '?'));
        } else if (type === 'Z') {
          if (next === 0) out.push('ready');
          const sql = typeof sqls === 'function' ? sqls(next) : sqls[next];
          next++;
          if (sql === undefined) { sock.end(); return done('exit'); }
          if (typeof sql === 'number') setTimeout(() => sock.write(serialize.query('SELECT count(*) FROM customers')), sql);
          else sock.write(serialize.query(sql));
        }
      }
    });
  });
}
(async () => {
  const host = process.env.PGHOST, port = Number(process.env.PGPORT);
  const hold = Number(process.env.HOLD_SECONDS || 0);
  if (hold > 0) {
    const until = Date.now() + hold * 1000;
    const out = await session(host, port, () => (Date.now() < until ? 200 : undefined), hold * 1000 + 30000);
    const lines = out.split('\n');
    console.log('--- held\nanswers=' + lines.filter((l) => l.startsWith('row ')).length +
      ' errors=' + lines.filter((l) => l.startsWith('error')).length + ' end=' + lines.at(-1));
  }
  for (const [name, h, p, sql] of [
    ['query', host, port, 'SELECT id, name FROM customers ORDER BY id'],
    ['card', host, port, 'SELECT name, card_number FROM customers WHERE id = 1'],
    ['drop', host, port, 'DROP TABLE customers'],
    ['direct', process.env.DIRECT_HOST, Number(process.env.DIRECT_PORT), 'SELECT 1'],
  ]) console.log('--- ' + name + '\n' + (await session(h, p, [sql])));
})();
`;

export interface AgentJobOptions {
  name: string;
  namespace: string;
  node: NodeInfo;
  db: OrdersDatabase;
  /** The node port relaying PostgreSQL: the agent's direct attempt goes there, around the sidecar. */
  pgPort: number;
  /** Hold one session open this long before the usual four (0: none). */
  holdSeconds?: number;
}

/** The agent as a Job: one pod, the `cli` image's Node, as UID 1000, never restarted. */
export function agentJob(o: AgentJobOptions): Record<string, unknown> {
  return {
    apiVersion: 'batch/v1',
    kind: 'Job',
    metadata: { name: o.name, namespace: o.namespace },
    spec: {
      backoffLimit: 0,
      template: {
        metadata: { labels: { ...AGENT_LABELS } },
        spec: {
          serviceAccountName: AGENT_SERVICE_ACCOUNT,
          restartPolicy: 'Never',
          tolerations: [NODE_TOLERATION],
          securityContext: { runAsUser: 1000, runAsGroup: 1000 },
          containers: [
            {
              name: 'agent',
              image: o.node.chaperoneImages.cli,
              command: ['/usr/local/bin/node', '-e', AGENT_SCRIPT],
              env: [
                { name: 'DB', value: o.db.name },
                { name: 'DIRECT_HOST', value: o.node.ip },
                { name: 'DIRECT_PORT', value: String(o.pgPort) },
                { name: 'HOLD_SECONDS', value: String(o.holdSeconds ?? 0) },
              ],
            },
          ],
        },
      },
    },
  };
}

/** Splits the agent's output into its `--- name` sections. */
export function agentSections(stdout: string): Record<string, string> {
  const sections: Record<string, string> = {};
  let current: string | undefined;
  for (const line of stdout.split('\n')) {
    const m = /^--- (\S+)$/.exec(line);
    if (m) {
      current = m[1]!;
      sections[current] = '';
    } else if (current) sections[current] += `${line}\n`;
  }
  return sections;
}

/** Complete or Failed, whichever the Job reaches first; undefined while it runs. */
export async function jobOutcome(
  kubectl: ReturnType<typeof kubectlFor>,
  namespace: string,
  name: string,
): Promise<'Complete' | 'Failed' | undefined> {
  const job = JSON.parse(await kubectl(['get', '-n', namespace, `job/${name}`, '-o', 'json'])) as {
    status?: { conditions?: { type: string; status: string }[] };
  };
  return job.status?.conditions?.find(
    (c) => (c.type === 'Complete' || c.type === 'Failed') && c.status === 'True',
  )?.type as 'Complete' | 'Failed' | undefined;
}

/** The name of the (first) pod of Job `name`; empty while the job controller has made none. */
export async function jobPodName(
  kubectl: ReturnType<typeof kubectlFor>,
  namespace: string,
  name: string,
): Promise<string> {
  const out = await kubectl([
    'get',
    'pods',
    '-n',
    namespace,
    '-l',
    `job-name=${name}`,
    '-o',
    'jsonpath={.items[0].metadata.name}',
  ]);
  return out.trim();
}

/** The `chaperone` CLI of this checkout against the recording store in MinIO (as an auditor runs it). */
export function auditorCli(minio: MinioInfo, store: string) {
  return async (args: string[]): Promise<CommandResult> =>
    runCommand(process.execPath, [join(REPO, 'cli', 'main.ts'), ...args], {
      env: {
        ...process.env,
        CHAPERONE_STORE: store,
        AWS_ENDPOINT_URL: minio.endpoint,
        AWS_REGION: minio.region,
        AWS_ACCESS_KEY_ID: minio.accessKeyId,
        AWS_SECRET_ACCESS_KEY: minio.secretAccessKey,
      },
    });
}
