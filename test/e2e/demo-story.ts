// The story `make demo` tells and test/e2e/demo.test.ts checks: a platform team installs Chaperone
// on a (local, real) control plane, an agent pod is injected and runs psql through the sidecar, and
// an auditor lists, verifies and replays the recording from MinIO. Every step checks what it shows
// and throws DemoFailure when the product does not behave as described.
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import {
  GetBucketLifecycleConfigurationCommand,
  GetObjectLockConfigurationCommand,
} from '@aws-sdk/client-s3';
import {
  AdmissionregistrationV1Api,
  CoreV1Api,
  CustomObjectsApi,
  type KubeConfig,
  NetworkingV1Api,
  type V1Pod,
} from '@kubernetes/client-node';
import { stringify } from 'yaml';
import { SESSION_POLICY } from '../../crds/index.ts';
import { generateSigningKey } from '../../recording/index.ts';
import { renderWebhookConfigurations } from '../../webhook/index.ts';
import { kubeConfigFor } from '../env/kube.ts';
import { s3ClientFor } from '../env/minio.ts';
import { freePort, httpOk, type OwnedProcess, spawnOwned, waitUntil } from '../env/net.ts';
import { psql as adminPsql, createRole } from '../env/postgres.ts';
import type { KubeInfo, MinioInfo, PostgresInfo } from '../env/types.ts';
import { chaperonePrograms } from './container-programs.ts';
import { createPodNetwork, type PodNetwork } from './pod-network.ts';
import { type PodRun, runPod } from './pod-runner.ts';

const exec = promisify(execFile);
const REPO = join(import.meta.dirname, '..', '..');
const SIDECAR_IMAGE = 'ghcr.io/chaperone/chaperone:0.1.0';
const CARD = '4111 1111 1111 1111';

/** Cluster IPs the pod reaches, as kube-proxy would route them (see pod-network.ts). */
const SERVICES = {
  kubernetes: { ip: '10.0.0.1', port: 443, names: ['kubernetes.default.svc', 'kubernetes.default'] },
  ordersDb: {
    ip: '10.0.0.20',
    port: 5432,
    names: ['orders-db.data.svc', 'orders-db.data.svc.cluster.local'],
  },
  minio: { ip: '10.0.0.30', port: 9000, names: ['minio.chaperone-system.svc'] },
  dns: '10.0.0.10',
} as const;

export class DemoFailure extends Error {
  override name = 'DemoFailure';
}

export interface DemoEnv {
  kube: KubeInfo;
  minio: MinioInfo;
  postgres: PostgresInfo;
}

export interface DemoOptions {
  env: DemoEnv;
  /** Everything the newcomer reads. */
  print: (text: string) => void;
  /** Scratch directory (volumes, logs, keys); kept when keepDir is set. */
  workDir: string;
  /** 10.213.<subnet>.0/30 for the pod's veth; distinct per concurrent run. */
  subnet: number;
  /**
   * Suffix names (namespaces, webhook configurations, operator scope) so the story can share an
   * apiserver with other tests. The demo runs on its own control plane and keeps plain names.
   */
  isolated: boolean;
}

export interface DemoReport {
  namespace: string;
  sessionIds: string[];
  agent: Record<string, string>;
  auditor: { ls: string; verify: string; cat: string };
  warnings: string[];
}

function check(condition: unknown, message: string): asserts condition {
  if (!condition) throw new DemoFailure(message);
}

async function until<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await probe();
      if (value !== undefined) return value;
    } catch (error) {
      last = error;
    }
    if (Date.now() > deadline) {
      throw new DemoFailure(`${what}: not seen in ${timeoutMs / 1000} s${last ? ` (${String(last)})` : ''}`);
    }
    await new Promise((r) => setTimeout(r, 250));
  }
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

/** What the agent container runs: plain psql, told nothing but PGHOST/PGPORT and its token file. */
const AGENT_SCRIPT = `
export PGPASSWORD="$(cat "$CHAPERONE_TOKEN_FILE")" PGUSER=report-agent PGDATABASE=orders PGCONNECT_TIMEOUT=5
q() { echo "--- $1"; psql -X -A -t -v ON_ERROR_STOP=1 -c "$2" 2>&1; echo "exit=$?"; }
q query "SELECT id, name FROM customers ORDER BY id"
q card "SELECT name, card_number FROM customers WHERE id = 1"
q drop "DROP TABLE customers"
echo "--- direct"
psql -X -h orders-db.data.svc -p 5432 -c "SELECT 1" 2>&1; echo "exit=$?"
`;

export async function runDemo(options: DemoOptions): Promise<DemoReport> {
  const { env, print, workDir } = options;
  const id = randomBytes(3).toString('hex');
  const suffix = options.isolated ? `-${id}` : '';
  const names = {
    system: `chaperone-system${suffix}`,
    agents: `agents${suffix}`,
    webhookConfig: `chaperone${suffix}`,
    policy: 'orders-agents',
    bucket: 'chaperone-recordings',
    prefix: `demo${suffix || `-${id}`}`,
    runLabel: 'chaperone.dev/demo-run',
  };
  const kc: KubeConfig = kubeConfigFor(env.kube);
  const core = kc.makeApiClient(CoreV1Api);
  const custom = kc.makeApiClient(CustomObjectsApi);
  const admission = kc.makeApiClient(AdmissionregistrationV1Api);
  const networking = kc.makeApiClient(NetworkingV1Api);
  const processes: OwnedProcess[] = [];
  let network: PodNetwork | undefined;
  let stepNo = 0;
  const step = (title: string) => print(`\n${++stepNo}. ${title}\n`);
  const say = (text: string) => print(`   ${text.replaceAll('\n', '\n   ')}\n`);
  const kubectl = async (args: string[], input?: string): Promise<string> => {
    const run = exec(env.kube.kubectl, ['--kubeconfig', env.kube.kubeconfigPath, ...args], {
      maxBuffer: 16 << 20,
    });
    if (input !== undefined) run.child.stdin?.end(input);
    try {
      const { stdout } = await run;
      return stdout;
    } catch (error) {
      const e = error as { stderr?: string; message: string };
      throw new DemoFailure(`kubectl ${args.join(' ')} failed: ${e.stderr || e.message}`);
    }
  };
  const cli = async (args: string[], quiet = false): Promise<{ code: number; out: string }> => {
    if (!quiet) say(`$ chaperone ${args.join(' ')}`);
    try {
      const { stdout, stderr } = await exec(process.execPath, [join(REPO, 'cli', 'main.ts'), ...args], {
        env: {
          ...process.env,
          CHAPERONE_STORE: `s3://${names.bucket}/${names.prefix}`,
          AWS_ENDPOINT_URL: env.minio.endpoint,
          AWS_REGION: env.minio.region,
          AWS_ACCESS_KEY_ID: env.minio.accessKeyId,
          AWS_SECRET_ACCESS_KEY: env.minio.secretAccessKey,
        },
        maxBuffer: 16 << 20,
      });
      return { code: 0, out: stdout + stderr };
    } catch (error) {
      const e = error as { code?: number; stdout?: string; stderr?: string };
      return { code: e.code ?? 1, out: `${e.stdout ?? ''}${e.stderr ?? ''}` };
    }
  };
  const logFile = (name: string) => join(workDir, `${name}.log`);

  try {
    step('A local control plane: etcd, kube-apiserver, kube-controller-manager; MinIO; PostgreSQL');
    say(`kube-apiserver   ${env.kube.server}   (kubeconfig: ${env.kube.kubeconfigPath})`);
    say(`MinIO            ${env.minio.endpoint}`);
    say(`PostgreSQL       127.0.0.1:${env.postgres.port}`);
    const versions = JSON.parse(await kubectl(['version', '-o', 'json'])) as {
      clientVersion?: { gitVersion?: string };
      serverVersion?: { gitVersion?: string };
    };
    say(`Kubernetes ${versions.serverVersion?.gitVersion}, kubectl ${versions.clientVersion?.gitVersion}`);

    step('A node for the agent pod: a network namespace with cluster IPs routed to the servers');
    network = await createPodNetwork(`chp-demo${suffix}`, options.subnet);
    const apiPort = Number(new URL(env.kube.server).port);
    const minioPort = Number(new URL(env.minio.endpoint).port);
    await network.exposeService({
      ...SERVICES.kubernetes,
      target: { host: '127.0.0.1', port: apiPort },
      names: [...SERVICES.kubernetes.names],
    });
    await network.exposeService({
      ...SERVICES.ordersDb,
      target: { host: '127.0.0.1', port: env.postgres.port },
      names: [...SERVICES.ordersDb.names],
    });
    await network.exposeService({
      ...SERVICES.minio,
      target: { host: '127.0.0.1', port: minioPort },
      names: [...SERVICES.minio.names],
    });
    say(`pod network namespace ${network.netns}, pod IP ${network.podIp}`);
    say(
      `kubernetes.default.svc ${SERVICES.kubernetes.ip}:443, orders-db.data.svc ${SERVICES.ordersDb.ip}:5432,`,
    );
    say(`MinIO ${SERVICES.minio.ip}:9000 (stand-ins for a CNI plugin and kube-proxy; see README, Testing)`);

    step('The database the agent works on: orders, with a customer card number in it');
    const dbPassword = randomBytes(12).toString('hex');
    const dbUser = `orders_app${suffix.replace('-', '_')}`;
    await createRole(env.postgres, { name: dbUser, password: dbPassword, method: 'scram' });
    const dbName = `orders${suffix.replace('-', '_')}`;
    await adminPsql(env.postgres, `DROP DATABASE IF EXISTS ${dbName}`);
    await adminPsql(env.postgres, `CREATE DATABASE ${dbName} OWNER ${dbUser}`);
    await adminPsql(
      { ...env.postgres, database: dbName },
      `SET ROLE ${dbUser};
       CREATE TABLE customers (id int PRIMARY KEY, name text NOT NULL, card_number text);
       INSERT INTO customers VALUES (1, 'Ada Lovelace', '${CARD}'), (2, 'Alan Turing', NULL);`,
    );
    say(`database ${dbName}, role ${dbUser} (its password goes into a Secret only the sidecar mounts)`);

    step('Install: CRDs (kubectl apply -f crds/), then the operator and the webhook as processes');
    say(await kubectl(['apply', '--server-side', '--force-conflicts', '-f', join(REPO, 'crds')]));
    await kubectl([
      'wait',
      '--for=condition=Established',
      '--timeout=60s',
      'crd/sessionpolicies.chaperone.dev',
      'crd/sessionapprovals.chaperone.dev',
    ]);
    await core.createNamespace({ body: { metadata: { name: names.system } } });
    const operatorConfig = {
      systemNamespace: names.system,
      ...(options.isolated ? { watchNamespace: names.agents } : {}),
      certificates: {
        localUrl: true,
        webhookSelector: `${names.runLabel}=${id}`,
      },
      server: { host: '127.0.0.1', port: await freePort() },
      logLevel: 'info',
    };
    const operatorConfigFile = join(workDir, 'operator.yaml');
    await writeFile(operatorConfigFile, stringify(operatorConfig));
    const operator = spawnOwned(
      process.execPath,
      [
        join(REPO, 'operator', 'main.ts'),
        '--config',
        operatorConfigFile,
        '--kubeconfig',
        env.kube.kubeconfigPath,
      ],
      { name: 'chaperone-operator', logFile: logFile('operator') },
    );
    processes.push(operator);
    await waitUntil('operator', () => httpOk(`http://127.0.0.1:${operatorConfig.server.port}/readyz`), {
      process: operator,
    });
    say(`$ chaperone-operator --config ${operatorConfigFile}   (log: ${logFile('operator')})`);
    const tlsSecret = await until('webhook TLS Secret from the operator', async () => {
      const s = await core.readNamespacedSecret({ name: 'chaperone-webhook-tls', namespace: names.system });
      return s.data?.['ca.crt'] ? s : undefined;
    });
    say(
      `operator issued the webhook's CA and serving certificate (Secret ${names.system}/chaperone-webhook-tls)`,
    );

    const webhookPort = await freePort();
    const webhookConfig = {
      sidecarImage: SIDECAR_IMAGE,
      systemNamespace: names.system,
      listen: { host: '127.0.0.1', port: webhookPort },
      tls: { source: 'secret' },
      dns: { resolvers: [SERVICES.dns], discoverService: null },
      kubeconfig: env.kube.kubeconfigPath,
      logLevel: 'info',
    };
    const webhookConfigFile = join(workDir, 'webhook.yaml');
    await writeFile(webhookConfigFile, stringify(webhookConfig));
    const webhook = spawnOwned(
      process.execPath,
      [join(REPO, 'webhook', 'main.ts'), '--config', webhookConfigFile],
      {
        name: 'chaperone-webhook',
        logFile: logFile('webhook'),
      },
    );
    processes.push(webhook);
    const caPem = Buffer.from(tlsSecret.data!['ca.crt']!, 'base64').toString('utf8');
    const caFile = join(workDir, 'webhook-ca.pem');
    await writeFile(caFile, caPem);
    await waitUntil(
      'webhook',
      () =>
        exec('curl', ['-sf', '--cacert', caFile, `https://127.0.0.1:${webhookPort}/healthz`]).then(
          () => true,
          () => false,
        ),
      { process: webhook },
    );
    say(
      `$ chaperone-webhook --config ${webhookConfigFile}   (https://127.0.0.1:${webhookPort}, log: ${logFile('webhook')})`,
    );
    const { mutating, validating } = renderWebhookConfigurations({
      client: { mode: 'url', baseUrl: `https://127.0.0.1:${webhookPort}` },
      caBundle: caPem,
      systemNamespace: names.system,
      name: names.webhookConfig,
      extraNamespaceLabels: options.isolated ? { [names.runLabel]: id } : {},
    });
    for (const cfg of [mutating, validating]) {
      cfg.metadata = { ...cfg.metadata, labels: { ...cfg.metadata?.labels, [names.runLabel]: id } };
    }
    await kubectl(['apply', '-f', '-'], `${stringify(mutating)}---\n${stringify(validating)}`);
    say(
      `registered MutatingWebhookConfiguration and ValidatingWebhookConfiguration ${names.webhookConfig} (failurePolicy Fail)`,
    );

    step(`Opt a namespace in and apply a SessionPolicy`);
    say(`$ kubectl create namespace ${names.agents}`);
    say((await kubectl(['create', 'namespace', names.agents])).trim());
    say(`$ kubectl label namespace ${names.agents} chaperone.dev/recording=enabled`);
    say(
      (
        await kubectl([
          'label',
          'namespace',
          names.agents,
          'chaperone.dev/recording=enabled',
          `${names.runLabel}=${id}`,
        ])
      ).trim(),
    );
    await core.createNamespacedServiceAccount({
      namespace: names.agents,
      body: { metadata: { name: 'report-agent' } },
    });
    const signing = generateSigningKey();
    const publicKeyFile = join(workDir, 'recording-signing.pub');
    await writeFile(publicKeyFile, signing.publicKeyPem);
    const secrets: [string, Record<string, string>][] = [
      ['orders-db-credentials', { username: dbUser, password: dbPassword }],
      ['recordings-s3', { accessKeyId: env.minio.accessKeyId, secretAccessKey: env.minio.secretAccessKey }],
      ['recording-signing-key', { privateKey: signing.privateKeyPem }],
    ];
    for (const [name, stringData] of secrets) {
      await core.createNamespacedSecret({
        namespace: names.agents,
        body: { metadata: { name }, stringData },
      });
    }
    const policy = {
      apiVersion: 'chaperone.dev/v1alpha1',
      kind: 'SessionPolicy',
      metadata: { name: names.policy, namespace: names.agents },
      spec: {
        podSelector: { matchLabels: { app: 'report-agent' } },
        targets: [
          {
            name: 'orders-db',
            protocol: 'postgres',
            // The Service's cluster IP, not its name: the pod runner's stand-in for cluster DNS is
            // /etc/hosts, and the sidecar refuses upstream names a hosts file overrides (hostAliases).
            upstream: { host: SERVICES.ordersDb.ip, port: 5432, database: dbName },
            listenPort: 15432,
            credentialsSecret: { name: 'orders-db-credentials' },
          },
        ],
        identity: {
          tokenRequired: true,
          issuers: [
            {
              issuer: env.kube.serviceAccountIssuer,
              audiences: ['chaperone'],
              jwksUri: `https://${SERVICES.kubernetes.names[0]}/openid/v1/jwks`,
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
            url: `s3://${names.bucket}/${names.prefix}`,
            endpoint: `http://${SERVICES.minio.ip}:${SERVICES.minio.port}`,
            region: env.minio.region,
            forcePathStyle: true,
            credentialsSecret: { name: 'recordings-s3' },
          },
          signingKeySecret: { name: 'recording-signing-key' },
          retentionDays: 7,
          objectLock: { mode: 'GOVERNANCE' },
        },
      },
    };
    const policyFile = join(workDir, 'sessionpolicy.yaml');
    await writeFile(policyFile, stringify(policy));
    say(`$ kubectl apply -f ${policyFile}`);
    say(await kubectl(['apply', '-f', policyFile]));
    let lastCondition = '';
    const ready = await until(
      'SessionPolicy Ready=True',
      async () => {
        const p = (await custom.getNamespacedCustomObject({
          group: SESSION_POLICY.group,
          version: SESSION_POLICY.version,
          plural: SESSION_POLICY.plural,
          namespace: names.agents,
          name: names.policy,
        })) as {
          status?: { conditions?: { type: string; status: string; reason?: string; message?: string }[] };
        };
        const c = p.status?.conditions?.find((x) => x.type === 'Ready');
        if (c?.status === 'True') return c;
        if (c?.status === 'False') lastCondition = `${c.reason}: ${c.message}`;
        return undefined;
      },
      90_000,
    ).catch((error: Error) => {
      throw new DemoFailure(`${error.message}${lastCondition ? `; last condition ${lastCondition}` : ''}`);
    });
    say(`Ready=True (${ready.reason}): ${ready.message ?? ''}`);
    say(await kubectl(['get', 'sessionpolicies', '-n', names.agents]));
    const configMaps = await core.listNamespacedConfigMap({
      namespace: names.agents,
      labelSelector: 'app.kubernetes.io/managed-by=chaperone-operator',
    });
    const netpols = await networking.listNamespacedNetworkPolicy({ namespace: names.agents });
    check(configMaps.items.length === 1, `expected one sidecar ConfigMap, found ${configMaps.items.length}`);
    check(netpols.items.length >= 1, 'expected a NetworkPolicy for the agent pods');
    say(
      `rendered ConfigMap ${configMaps.items[0]!.metadata!.name} (sidecar config) and NetworkPolicy ${netpols.items[0]!.metadata!.name}`,
    );
    const s3 = s3ClientFor(env.minio);
    const lock = await until('the recording bucket', () =>
      s3.send(new GetObjectLockConfigurationCommand({ Bucket: names.bucket })),
    );
    check(lock.ObjectLockConfiguration?.ObjectLockEnabled === 'Enabled', 'the bucket has no Object Lock');
    const lifecycle = await s3.send(new GetBucketLifecycleConfigurationCommand({ Bucket: names.bucket }));
    say(
      `bucket ${names.bucket}: created by the operator with Object Lock; lifecycle rules: ${(lifecycle.Rules ?? []).map((r) => `${r.ID} (${r.Expiration?.Days} days)`).join(', ')}`,
    );

    step('Create the agent pod through the API: the webhook injects the sidecar');
    const agentPod: V1Pod = {
      metadata: { name: 'report-agent', namespace: names.agents, labels: { app: 'report-agent' } },
      spec: {
        serviceAccountName: 'report-agent',
        nodeName: 'demo-node',
        restartPolicy: 'Never',
        securityContext: { runAsUser: 1000, runAsGroup: 1000 },
        containers: [{ name: 'agent', image: 'postgres:15', command: ['sh', '-c', AGENT_SCRIPT] }],
      },
    };
    const created = await core.createNamespacedPod({ namespace: names.agents, body: agentPod });
    const init = created.spec?.initContainers ?? [];
    const sidecar = init.find((c) => c.name === 'chaperone');
    check(sidecar?.restartPolicy === 'Always', 'the pod came back without the chaperone native sidecar');
    check(
      init.some((c) => c.name === 'chaperone-init'),
      'the pod came back without the chaperone-init container',
    );
    say(
      `initContainers: ${init.map((c) => `${c.name}${c.restartPolicy === 'Always' ? ' (native sidecar)' : ''}`).join(', ')}`,
    );
    const agentEnv = created.spec?.containers[0]?.env ?? [];
    say(`agent env added: ${agentEnv.map((e) => `${e.name}=${e.value ?? '(ref)'}`).join(' ')}`);
    say(`$ kubectl get pod -n ${names.agents} report-agent -o yaml   # shows the whole injected spec`);
    const refused = await core
      .createNamespacedPod({
        namespace: names.agents,
        body: {
          metadata: { name: 'sneaky-agent', labels: { app: 'report-agent' } },
          spec: {
            hostNetwork: true,
            securityContext: { runAsUser: 1000 },
            containers: [{ name: 'agent', image: 'postgres:15' }],
          },
        },
      })
      .then(
        () => undefined,
        (error: { body?: string; message: string }) => {
          const body = String(error.body ?? error.message);
          try {
            return String((JSON.parse(body) as { message?: string }).message ?? body);
          } catch {
            return body;
          }
        },
      );
    check(refused, 'a hostNetwork pod (which could bypass capture) was admitted');
    say(`a hostNetwork pod is refused: ${refused}`);

    step('Run the pod (the pod runner plays kubelet: netns, init rules, native sidecar, agent as UID 1000)');
    const podRun: PodRun = await runPod({
      core,
      pod: created,
      network,
      resolve: chaperonePrograms({ sidecarImage: SIDECAR_IMAGE }),
      workDir,
      nodeName: 'demo-node',
      log: (line) => say(line),
      serviceEnv: { KUBERNETES_SERVICE_HOST: SERVICES.kubernetes.ip, KUBERNETES_SERVICE_PORT: '443' },
    });
    for (const w of podRun.warnings) say(`runner: ${w}`);
    const initResult = podRun.initContainers.find((c) => c.name === 'chaperone-init');
    say(`chaperone-init: ${initResult?.stdout.trim().replaceAll('\n', '; ')}`);
    const agent = podRun.containers[0]!;
    const sidecarLog = podRun.sidecars[0]?.stderr ?? '';
    await writeFile(logFile('sidecar'), `${podRun.sidecars[0]?.stdout ?? ''}${sidecarLog}`);
    const sections = agentSections(agent.stdout);
    say(`agent exited ${agent.exitCode}; sidecar log: ${logFile('sidecar')}`);
    const show = (name: string) => (sections[name] ?? '(no output)').trim();

    step('What the agent saw');
    say(`a normal query:\n${show('query')}`);
    check(
      /Ada Lovelace/.test(show('query')) && /exit=0/.test(show('query')),
      'the normal query did not return rows',
    );
    say(`\nthe card number (masked by the sidecar):\n${show('card')}`);
    check(/exit=0/.test(show('card')), 'the card query failed');
    check(
      !show('card').includes(CARD) && !show('card').includes(CARD.replaceAll(' ', '')),
      'the card number reached the agent',
    );
    say(`\nDROP TABLE customers (blocked by the guardrail):\n${show('drop')}`);
    check(/exit=[1-9]/.test(show('drop')), 'DROP TABLE was not refused');
    const stillThere = await adminPsql(
      { ...env.postgres, database: dbName },
      'SELECT count(*) FROM customers',
    );
    check(/2/.test(stillThere), 'the customers table is gone');
    say('(the table is still there: the statement never reached PostgreSQL)');
    say(`\nstraight to orders-db.data.svc:5432, around the sidecar:\n${show('direct')}`);
    check(/exit=[1-9]/.test(show('direct')), 'the agent reached the database directly');
    check(!/exit=0/.test(show('direct')), 'the agent reached the database directly');

    step('The auditor: list, verify and replay the recording from MinIO');
    say(`(recordings: s3://${names.bucket}/${names.prefix}; public key ${publicKeyFile})`);
    const ls = await until(
      'the session in the store index',
      async () => {
        const r = await cli(['sessions', 'ls', '--namespace', names.agents, '--json'], true);
        return r.code === 0 && r.out.trim() ? r : undefined;
      },
      60_000,
    );
    const sessions = ls.out
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { sessionId: string });
    const table = await cli(['sessions', 'ls', '--namespace', names.agents]);
    say(table.out.trim());
    check(
      table.out.includes(`system:serviceaccount:${names.agents}:report-agent`),
      'the session does not name the agent identity',
    );
    const verify = await cli(['verify', '--all', '--namespace', names.agents, '--public-key', publicKeyFile]);
    say(verify.out.trim());
    check(verify.code === 0, `chaperone verify failed (exit ${verify.code})`);
    const replays: { id: string; out: string }[] = [];
    for (const s of sessions) {
      const r = await cli(['sessions', 'cat', s.sessionId], true);
      check(r.code === 0, `chaperone sessions cat ${s.sessionId} failed: ${r.out}`);
      replays.push({ id: s.sessionId, out: r.out });
    }
    const cardReplay = replays.find((r) => r.out.includes('card_number'));
    const dropReplay = replays.find((r) => r.out.includes('DROP TABLE customers'));
    check(cardReplay, 'no recorded session shows the card query');
    check(dropReplay, 'no recorded session shows the DROP TABLE');
    for (const replay of [cardReplay, dropReplay]) {
      say(`$ chaperone sessions cat ${replay.id}`);
      say(replay.out.trim());
    }
    check(/masked/.test(cardReplay.out), 'the replay does not show the masking');
    check(!replays.some((r) => r.out.includes(CARD)), 'the recording holds the unmasked card number');
    check(/policy\.blocked/.test(dropReplay.out), 'the replay does not show the blocked statement');
    const cat = { out: `${cardReplay.out}${dropReplay.out}` };
    return {
      namespace: names.agents,
      sessionIds: sessions.map((s) => s.sessionId),
      agent: sections,
      auditor: { ls: table.out, verify: verify.out, cat: cat.out },
      warnings: podRun.warnings,
    };
  } finally {
    step('Clean up');
    const quiet = async (what: string, fn: () => Promise<unknown>) => {
      try {
        await fn();
      } catch (error) {
        say(`cleanup: ${what}: ${(error as Error).message}`);
      }
    };
    await quiet('namespace', () => core.deleteNamespace({ name: names.agents }));
    await quiet('webhook configurations', async () => {
      await admission.deleteMutatingWebhookConfiguration({ name: names.webhookConfig });
      await admission.deleteValidatingWebhookConfiguration({ name: names.webhookConfig });
    });
    for (const p of processes.reverse()) await quiet(p.name, () => p.stop());
    await quiet('system namespace', () => core.deleteNamespace({ name: names.system }));
    await quiet('pod network', async () => network?.destroy());
    say('stopped the webhook and operator, removed the namespaces and the pod network');
  }
}

/** A directory for this run's files; those of earlier runs are removed, the last one is kept to read. */
export async function demoWorkDir(base: string): Promise<string> {
  await rm(base, { recursive: true, force: true });
  await mkdir(base, { recursive: true });
  return mkdtemp(join(base, 'run-'));
}
