// The injected story on the real node (test/env/node.ts): the webhook (a host process, registered by
// URL) injects into a Job's pod; kubelet runs chaperone-init from the `init` image (real iptables in
// the pod's network namespace), the native sidecar from the `sidecar` image gates the agent with its
// startup probe; the agent speaks the PostgreSQL wire protocol through the sidecar; the Job
// completes, the sidecar flushes its recording to MinIO and `chaperone verify` passes; a Deployment's
// pods are injected before and after a rollout, and both pods' recordings verify.
//
// PostgreSQL and MinIO of the test environment listen on 127.0.0.1, which pods cannot reach: the
// test relays each from the node's address (a TCP relay in this process, refused from the uplink by
// a rule in the node's inbound chain), and the SessionPolicy names that address. Runs only with the
// `node` part (`make node-test`) and when `make images` built Chaperone's images.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import { stringify } from 'yaml';
import { installCrds } from '../../operator/testing/kube.ts';
import { renderWebhookConfigurations } from '../../webhook/index.ts';
import {
  AGENT_SCRIPT,
  agentJob,
  agentSections,
  auditorCli,
  CARD,
  controllerUser,
  jobOutcome,
  jobPodName,
  kubectlFor,
  policyReady,
  REPO,
} from '../e2e/testing/cluster.ts';
import { freshWorkDir, type StoryServers, startStoryServers } from '../e2e/testing/story.ts';
import { type KubeInfo, type MinioInfo, type NodeInfo, type PostgresInfo, testEnv } from '../env/index.ts';
import { kubeConfigFor } from '../env/kube.ts';
import { freePort, httpOk, type OwnedProcess, spawnOwned, waitUntil } from '../env/net.ts';
import { NODE_TOLERATION, safetyNetDrops } from '../env/node.ts';
import { psql as adminPsql } from '../env/postgres.ts';
import { nodePartSkip } from '../testing/exclusive.ts';
import { until as poll } from '../testing/until.ts';
import { httpdPod } from './testing/pods.ts';

const exec = promisify(execFile);
const skip = nodePartSkip();

// At the top level: parts this file starts itself (MinIO and PostgreSQL under `make node-test`) then
// stop after the whole file, not after the hook that asked for them.
const env = skip ? undefined : await testEnv(['kube', 'node', 'minio', 'postgres']);

describe('the injected story on the real node', { skip }, () => {
  let kube: KubeInfo;
  let node: NodeInfo;
  let minio: MinioInfo;
  let postgres: PostgresInfo;
  let workDir: string;
  let imagesMissing = false;
  const id = randomBytes(3).toString('hex');
  const names = {
    system: `chaperone-system-${id}`,
    agents: `agents-${id}`,
    policyCheck: `np-check-${id}`,
    webhookConfig: `chaperone-${id}`,
    bucket: 'chaperone-recordings',
    prefix: `node-${id}`,
    runLabel: 'chaperone.dev/node-run',
  };
  const processes: OwnedProcess[] = [];
  let servers: StoryServers | undefined;
  let dbName: string;
  let pgRelay: number;
  let s3Relay: number;
  let publicKeyFile: string;

  const kubectl = (args: string[], input?: string) => kubectlFor(kube)(args, input);
  const apply = (object: unknown) => kubectl(['apply', '-f', '-'], JSON.stringify(object));
  const cli = async (args: string[]): Promise<{ code: number; out: string }> => {
    const r = await auditorCli(minio, `s3://${names.bucket}/${names.prefix}`)(args);
    return { code: r.code, out: r.stdout + r.stderr };
  };
  const until = <T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 90_000): Promise<T> =>
    poll(what, probe, { timeoutMs, intervalMs: 250 });
  /** Runs `<name>/main.ts` of this checkout on the host with `config` (a file in workDir) until `healthy`. */
  const hostProcess = async (
    name: 'operator' | 'webhook',
    config: object,
    args: string[],
    healthy: () => Promise<boolean>,
  ) => {
    const file = join(workDir, `${name}.yaml`);
    await writeFile(file, stringify(config));
    const child = spawnOwned(process.execPath, [join(REPO, name, 'main.ts'), '--config', file, ...args], {
      name: `chaperone-${name}`,
      logFile: join(workDir, `${name}.log`),
    });
    processes.push(child);
    await waitUntil(name, healthy, { process: child });
  };

  before(async () => {
    if (!env) return;
    ({ kube, node, minio, postgres } = env);
    const images = node.chaperoneImages;
    if (!images.sidecar || !images.init || !images.cli) {
      imagesMissing = true;
      return;
    }
    // This run's configs and logs (operator, webhook, pod, sidecar, memory peaks): the last run's stay.
    workDir = await freshWorkDir(join(homedir(), '.cache', 'chaperone', 'node-injected'));
    const apiPort = Number(new URL(kube.server).port);

    // PostgreSQL and MinIO, reachable from pods on the node's address; never from the uplink.
    servers = await startStoryServers(env, id, workDir);
    dbName = servers.db.name;
    pgRelay = servers.pg.port;
    s3Relay = servers.s3.port;
    publicKeyFile = servers.publicKeyFile;

    await installCrds(kubeConfigFor(kube));
    await kubectl(['create', 'namespace', names.system]);

    const operatorPort = await freePort();
    await hostProcess(
      'operator',
      {
        systemNamespace: names.system,
        watchNamespace: names.agents,
        certificates: { localUrl: true, webhookSelector: `${names.runLabel}=${id}` },
        // Pods reach the apiserver through the kubernetes Service: after DNAT, the node's address.
        networkPolicy: { apiServer: [{ host: node.ip, port: apiPort }] },
        server: { host: '127.0.0.1', port: operatorPort },
      },
      ['--kubeconfig', kube.kubeconfigPath],
      () => httpOk(`http://127.0.0.1:${operatorPort}/readyz`),
    );
    const caPem = await until('webhook TLS Secret from the operator', async () => {
      const ca = await kubectl([
        'get',
        'secret',
        '-n',
        names.system,
        'chaperone-webhook-tls',
        '-o',
        'jsonpath={.data.ca\\.crt}',
      ]);
      return ca ? Buffer.from(ca, 'base64').toString('utf8') : undefined;
    });
    const caFile = join(workDir, 'webhook-ca.pem');
    await writeFile(caFile, caPem);

    const webhookPort = await freePort();
    await hostProcess(
      'webhook',
      {
        sidecarImage: images.sidecar,
        initImage: images.init,
        initCommand: ['/usr/local/bin/node', '/app/webhook/init/main.ts'],
        systemNamespace: names.system,
        listen: { host: '127.0.0.1', port: webhookPort },
        tls: { source: 'secret' },
        dns: { resolvers: [node.clusterDnsIp], discoverService: null },
        // The test environment's kube-controller-manager creates Job pods as the admin user (no
        // per-controller service accounts): name it as the controller copying the Job's template.
        templateControllers: [await controllerUser(kube)],
        // The sidecar runs with the webhook's default resources: the limit is part of what is proven.
        kubeconfig: kube.kubeconfigPath,
      },
      [],
      () =>
        exec('curl', ['-sf', '--cacert', caFile, `https://127.0.0.1:${webhookPort}/healthz`]).then(
          () => true,
          () => false,
        ),
    );
    const { mutating, validating } = renderWebhookConfigurations({
      client: { mode: 'url', baseUrl: `https://127.0.0.1:${webhookPort}` },
      caBundle: caPem,
      systemNamespace: names.system,
      name: names.webhookConfig,
      extraNamespaceLabels: { [names.runLabel]: id },
    });
    await kubectl(['apply', '-f', '-'], `${stringify(mutating)}---\n${stringify(validating)}`);

    await kubectl(['create', 'namespace', names.agents]);
    await kubectl([
      'label',
      'namespace',
      names.agents,
      'chaperone.dev/recording=enabled',
      `${names.runLabel}=${id}`,
    ]);
    // The same ServiceAccount, Secrets and SessionPolicy as the demo story (test/e2e/testing/cluster.ts).
    const objects = servers.namespaceObjects({
      namespace: names.agents,
      bucket: names.bucket,
      prefix: names.prefix,
    });
    for (const object of objects) await apply(object);
    await policyReady(kubectl, names.agents, '90s');
  });

  after(async () => {
    if (!kube || imagesMissing) return;
    const quiet = (p: Promise<unknown>) => p.catch(() => {});
    await quiet(kubectl(['delete', 'namespace', names.agents, '--wait=false']));
    await quiet(kubectl(['delete', 'namespace', names.policyCheck, '--wait=false']));
    await quiet(
      kubectl(['delete', 'mutatingwebhookconfiguration,validatingwebhookconfiguration', names.webhookConfig]),
    );
    for (const p of processes.reverse()) await quiet(p.stop());
    await quiet(kubectl(['delete', 'namespace', names.system, '--wait=false']));
    await servers?.close();
  });

  let agentOut: Record<string, string> = {};

  test('a Job in an opted-in namespace is injected, runs init, sidecar and agent in order, and completes', async (t) => {
    if (imagesMissing) return t.skip('no Chaperone images: run `make images`');
    await apply(
      agentJob({ name: 'report', namespace: names.agents, node, db: servers!.db, pgPort: pgRelay }),
    );
    // Peak memory of each container of the node while the Job runs (cgroup v1), for docs/benchmarks.md.
    const peaks = new Map<string, number>();
    const sampler = setInterval(() => {
      exec('sh', [
        '-c',
        'cd /sys/fs/cgroup/memory/chaperone-node/kubepods && grep -H . */pod*/*/memory.max_usage_in_bytes; grep -H "^total_rss " */pod*/*/memory.stat',
      ])
        .then(({ stdout }) => {
          // Usage with page cache (max_usage_in_bytes), and anonymous memory (total_rss) as sampled.
          for (const line of stdout.trim().split('\n')) {
            const [path, value] = line.split(':');
            const id = path?.split('/').at(-2);
            const key = path?.endsWith('memory.stat') ? `${id}:rss` : id;
            const bytes = Number(value?.replace('total_rss ', ''));
            if (id && key) peaks.set(key, Math.max(peaks.get(key) ?? 0, bytes));
          }
        })
        .catch(() => {});
    }, 200);
    // Complete or Failed, whichever the Job reaches (a refused or crashing pod fails it early).
    const done = await until('the Job to finish', () => jobOutcome(kubectl, names.agents, 'report'), 240_000);
    clearInterval(sampler);
    const events = await kubectl(['get', 'events', '-n', names.agents]).catch(() => '');
    const podName = await jobPodName(kubectl, names.agents, 'report');
    const pod = JSON.parse(await kubectl(['get', 'pod', '-n', names.agents, podName, '-o', 'json'])) as {
      spec: { initContainers?: { name: string; image: string; restartPolicy?: string }[] };
      status: {
        initContainerStatuses?: {
          name: string;
          restartCount?: number;
          state: Record<
            string,
            { startedAt?: string; finishedAt?: string; exitCode?: number; reason?: string }
          >;
        }[];
        containerStatuses?: {
          name: string;
          state: Record<string, { startedAt?: string; exitCode?: number }>;
        }[];
      };
    };
    const logs = await kubectl(['logs', '-n', names.agents, podName, '-c', 'agent']).catch(() => '');
    await writeFile(join(workDir, 'pod.json'), JSON.stringify(pod, null, 2));
    await writeFile(join(workDir, 'memory-peaks.json'), JSON.stringify(Object.fromEntries(peaks), null, 2));
    await writeFile(join(workDir, 'events.txt'), events);
    for (const prev of [false, true]) {
      const l = await kubectl([
        'logs',
        '-n',
        names.agents,
        podName,
        '-c',
        'chaperone',
        ...(prev ? ['--previous'] : []),
      ]).catch((e: Error) => e.message);
      await writeFile(join(workDir, `sidecar${prev ? '-previous' : ''}.log`), l);
    }
    agentOut = agentSections(logs);
    assert.equal(done, 'Complete', `agent: ${logs}\nevents:\n${events}`);
    const init = pod.spec.initContainers ?? [];
    assert.deepEqual(
      init.map((c) => [c.name, c.image, c.restartPolicy ?? '']),
      [
        ['chaperone-init', node.chaperoneImages.init, ''],
        ['chaperone', node.chaperoneImages.sidecar, 'Always'],
      ],
    );
    const st = (name: string) =>
      Object.values(pod.status.initContainerStatuses?.find((s) => s.name === name)?.state ?? {})[0];
    const agent = Object.values(
      pod.status.containerStatuses?.find((s) => s.name === 'agent')?.state ?? {},
    )[0];
    assert.equal(st('chaperone-init')?.exitCode, 0);
    assert.equal(agent?.exitCode, 0);
    // Under the webhook's default memory limit the sidecar was never OOM-killed (not restarted, and
    // it stopped on kubelet's SIGTERM with exit 0, not 137) while the Job ran.
    const sidecarStatus = pod.status.initContainerStatuses?.find((s) => s.name === 'chaperone');
    assert.equal(sidecarStatus?.restartCount, 0, JSON.stringify(sidecarStatus));
    assert.equal(st('chaperone')?.exitCode, 0, JSON.stringify(sidecarStatus));
    // Order: init finished before the sidecar started, the sidecar started before the agent.
    assert.ok(Date.parse(st('chaperone-init')!.finishedAt!) <= Date.parse(st('chaperone')!.startedAt!));
    assert.ok(Date.parse(st('chaperone')!.startedAt!) <= Date.parse(agent!.startedAt!));
    // The agent's first statement through the sidecar succeeded: the startup probe gated it.
    assert.match(agentOut.query ?? '', /^ready\nrow 1\|Ada Lovelace\nrow 2\|Alan Turing\nexit$/m, logs);
  });

  test('through the sidecar, the card number is masked and DROP TABLE is blocked', async (t) => {
    if (imagesMissing) return t.skip('no Chaperone images: run `make images`');
    assert.match(agentOut.card ?? '', /^row Ada Lovelace\|/m);
    assert.doesNotMatch(agentOut.card ?? '', /4111 ?1111 ?1111 ?1111/);
    assert.match(agentOut.drop ?? '', /^error .*not allowed/m);
    assert.match(await adminPsql({ ...postgres, database: dbName }, 'SELECT count(*) FROM customers'), /2/);
  });

  test("a direct connection from the agent container to PostgreSQL is refused by chaperone-init's rules", async (t) => {
    if (imagesMissing) return t.skip('no Chaperone images: run `make images`');
    // The same address and port the sidecar uses, around it: no session, no row.
    assert.match(
      agentOut.direct ?? '',
      /^error E(CONNREFUSED|HOSTUNREACH|TIMEDOUT)|^timeout/m,
      agentOut.direct,
    );
    assert.doesNotMatch(agentOut.direct ?? '', /ready|row/);
  });

  test('the sidecar flushed its recording to MinIO when the Job ended, and chaperone verify passes', async (t) => {
    if (imagesMissing) return t.skip('no Chaperone images: run `make images`');
    const ls = await until('the sessions in the store index', async () => {
      const r = await cli(['sessions', 'ls', '--namespace', names.agents, '--json']);
      return r.code === 0 && r.out.trim().split('\n').length >= 3 ? r.out : undefined;
    });
    const sessions = ls
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { sessionId: string });
    assert.equal(sessions.length, 3);
    const verify = await cli(['verify', '--all', '--namespace', names.agents, '--public-key', publicKeyFile]);
    assert.equal(verify.code, 0, verify.out);
    const replays = await Promise.all(sessions.map((s) => cli(['sessions', 'cat', s.sessionId])));
    assert.ok(replays.some((r) => r.out.includes('DROP TABLE customers') && /policy\.blocked/.test(r.out)));
    assert.ok(!replays.some((r) => r.out.includes(CARD)));
  });

  test("outside the rendered NetworkPolicy, a process with the sidecar's UID is dropped", async (t) => {
    if (imagesMissing) return t.skip('no Chaperone images: run `make images`');
    if (!node.networkPolicies) return t.skip('no NetworkPolicy enforcer: build kube-router');
    // The injected pod's sidecar cannot be exec'd into (the webhook refuses it), and there
    // chaperone-init's rules would stop other destinations first. So the operator's rendered policy
    // is copied, unchanged, into a namespace that is not opted in, onto a pod with the agent labels
    // running as the sidecar's UID and without chaperone-init: only the NetworkPolicy stands between
    // it and the network, as it would for a compromised sidecar.
    const rendered = JSON.parse(
      await kubectl(['get', 'networkpolicies', '-n', names.agents, '-o', 'json']),
    ) as { items: { metadata: { name: string }; spec: Record<string, unknown> }[] };
    assert.equal(rendered.items.length, 1);
    const policy = rendered.items[0]!;
    await kubectl(['create', 'namespace', names.policyCheck]);
    await until('the default ServiceAccount', () =>
      kubectl(['get', '-n', names.policyCheck, 'serviceaccount', 'default']).then(() => true),
    );
    const sleeper = (name: string, labels: Record<string, string>, uid: number) => ({
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name, namespace: names.policyCheck, labels },
      spec: {
        tolerations: [NODE_TOLERATION],
        securityContext: { runAsUser: uid, runAsGroup: uid },
        terminationGracePeriodSeconds: 1,
        containers: [{ name: 'main', image: node.testImage, command: ['sleep', '3600'] }],
      },
    });
    await apply(
      httpdPod({
        name: 'web',
        namespace: names.policyCheck,
        labels: { app: 'web' },
        image: node.testImage,
        page: 'web',
      }),
    );
    await apply(sleeper('as-sidecar', { app: 'report-agent' }, 15999));
    await apply(sleeper('bystander', {}, 1000));
    await apply({
      apiVersion: 'networking.k8s.io/v1',
      kind: 'NetworkPolicy',
      metadata: { name: policy.metadata.name, namespace: names.policyCheck },
      spec: policy.spec,
    });
    for (const pod of ['web', 'as-sidecar', 'bystander']) {
      await kubectl([
        'wait',
        '-n',
        names.policyCheck,
        `pod/${pod}`,
        '--for=condition=Ready',
        '--timeout=90s',
      ]);
    }
    const ip = async (pod: string) =>
      (
        await kubectl(['get', '-n', names.policyCheck, `pod/${pod}`, '-o', 'jsonpath={.status.podIP}'])
      ).trim();
    const [webIp, sidecarIp] = [await ip('web'), await ip('as-sidecar')];
    // kube-router has programmed the policy for the pod once its firewall chain names the pod's IP.
    await until('kube-router to program the copied policy', async () => {
      const { stdout } = await exec('iptables-save', ['-t', 'filter']);
      return stdout.includes(`-s ${sidecarIp}/32`) && /^:KUBE-POD-FW-/m.test(stdout) ? true : undefined;
    });
    const probe = async (pod: string, url: string) => {
      const { stdout } = await exec(kube.kubectl, [
        `--kubeconfig=${kube.kubeconfigPath}`,
        'exec',
        '-n',
        names.policyCheck,
        pod,
        '--',
        'sh',
        '-c',
        `timeout 5 wget -q -O- ${url}; echo exit=$?`,
      ]);
      return stdout;
    };
    const uid = await kubectl(['exec', '-n', names.policyCheck, 'as-sidecar', '--', 'id', '-u']);
    assert.equal(uid.trim(), '15999');
    // Control: the server answers a pod the policy does not select.
    assert.match(await probe('bystander', `http://${webIp}:8080/`), /^web\nexit=0$/m);
    // Allowed by the rendered policy: the recording store (its port on the node's address).
    assert.match(await probe('as-sidecar', `http://${node.ip}:${s3Relay}/minio/health/live`), /exit=0/);
    // Not in the rendered policy: another pod's server on this machine. Dropped, no answer.
    const denied = await probe('as-sidecar', `http://${webIp}:8080/`);
    assert.doesNotMatch(denied, /^web$/m);
    assert.match(denied, /exit=(1|143)/);
  });

  test('a crashed sidecar is restarted by kubelet, and meanwhile the agent cannot get around it', async (t) => {
    if (imagesMissing) return t.skip('no Chaperone images: run `make images`');
    // The agent tries, in a loop, the sidecar's port and PostgreSQL directly (TCP connect only).
    const loop = `
const net = require('node:net');
const tryConnect = (host, port) => new Promise((resolve) => {
  const s = net.connect({ host, port });
  const done = (v) => { s.destroy(); resolve(v); };
  s.setTimeout(1000, () => done('timeout'));
  s.on('connect', () => done('ok'));
  s.on('error', (e) => done(e.code));
});
(async () => {
  for (;;) {
    const viaSidecar = await tryConnect('127.0.0.1', Number(process.env.PGPORT));
    const direct = await tryConnect(process.env.DIRECT_HOST, Number(process.env.DIRECT_PORT));
    console.log('sidecar=' + viaSidecar + ' direct=' + direct);
    await new Promise((r) => setTimeout(r, 100));
  }
})();
`;
    await apply({
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: 'long-agent', namespace: names.agents, labels: { app: 'report-agent' } },
      spec: {
        tolerations: [NODE_TOLERATION],
        serviceAccountName: 'report-agent',
        terminationGracePeriodSeconds: 5,
        securityContext: { runAsUser: 1000, runAsGroup: 1000 },
        containers: [
          {
            name: 'agent',
            image: node.chaperoneImages.cli,
            command: ['/usr/local/bin/node', '-e', loop],
            env: [
              { name: 'DIRECT_HOST', value: node.ip },
              { name: 'DIRECT_PORT', value: String(pgRelay) },
            ],
          },
        ],
      },
    });
    await kubectl(['wait', '-n', names.agents, 'pod/long-agent', '--for=condition=Ready', '--timeout=120s']);
    const agentLog = () => kubectl(['logs', '-n', names.agents, 'long-agent', '-c', 'agent']);
    await until('the agent through the sidecar', async () =>
      (await agentLog()).includes('sidecar=ok') ? true : undefined,
    );
    const sidecarStatus = async () => {
      const pod = JSON.parse(await kubectl(['get', '-n', names.agents, 'pod/long-agent', '-o', 'json'])) as {
        status: {
          initContainerStatuses?: {
            name: string;
            containerID?: string;
            restartCount: number;
            started?: boolean;
          }[];
        };
      };
      return pod.status.initContainerStatuses?.find((c) => c.name === 'chaperone');
    };
    const before = await sidecarStatus();
    assert.equal(before?.restartCount, 0);
    const containerId = before?.containerID?.replace(/^containerd:\/\//, '');
    assert.ok(containerId);
    // Crash it from the host: SIGKILL to the sidecar's process, as an OOM kill would.
    const { stdout: tasks } = await exec('ctr', [
      '--address',
      node.containerdAddress,
      '-n',
      'k8s.io',
      'task',
      'ls',
    ]);
    const pid = tasks
      .split('\n')
      .map((l) => l.trim().split(/\s+/))
      .find((f) => f[0] === containerId)?.[1];
    assert.ok(pid, `no task for ${containerId}`);
    const linesBefore = (await agentLog()).trim().split('\n').length;
    process.kill(Number(pid), 'SIGKILL');
    const restarted = await until(
      'kubelet to restart the sidecar',
      async () => {
        const s = await sidecarStatus();
        return s && s.restartCount >= 1 && s.started ? s : undefined;
      },
      120_000,
    );
    assert.notEqual(restarted.containerID, before?.containerID);
    // Through the new sidecar again.
    const after = await until('the agent through the restarted sidecar', async () => {
      const lines = (await agentLog()).trim().split('\n').slice(linesBefore);
      const down = lines.findIndex((l) => !l.startsWith('sidecar=ok'));
      return down >= 0 && lines.slice(down).some((l) => l.startsWith('sidecar=ok')) ? lines : undefined;
    });
    const all = (await agentLog()).trim().split('\n');
    // The crash was seen by the agent (its sidecar port refused for a while) ...
    assert.ok(
      after.some((l) => /^sidecar=(ECONNREFUSED|timeout)/.test(l)),
      after.join('\n'),
    );
    // ... and at no moment, before, during or after it, did a direct connection get through.
    assert.ok(all.length > 0);
    assert.deepEqual(
      all.filter((l) => !/ direct=(ECONNREFUSED|EHOSTUNREACH|ENETUNREACH|EPERM|EACCES|timeout)$/.test(l)),
      [],
    );
    await kubectl(['delete', '-n', names.agents, 'pod/long-agent', '--wait=false']);
  });

  test('a Deployment is injected, and after a rollout its replacement pod is injected and recorded too', async (t) => {
    if (imagesMissing) return t.skip('no Chaperone images: run `make images`');
    // The Job's agent, kept alive afterwards as a Deployment's container must be.
    const labels = { app: 'report-agent', workload: 'report-deploy' };
    await apply({
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: { name: 'report-deploy', namespace: names.agents },
      spec: {
        replicas: 1,
        selector: { matchLabels: labels },
        template: {
          metadata: { labels },
          spec: {
            tolerations: [NODE_TOLERATION],
            serviceAccountName: 'report-agent',
            terminationGracePeriodSeconds: 10,
            securityContext: { runAsUser: 1000, runAsGroup: 1000 },
            containers: [
              {
                name: 'agent',
                image: node.chaperoneImages.cli,
                command: ['/usr/local/bin/node', '-e', `${AGENT_SCRIPT}\nsetInterval(() => {}, 1 << 30);`],
                env: [
                  { name: 'DB', value: dbName },
                  { name: 'DIRECT_HOST', value: node.ip },
                  { name: 'DIRECT_PORT', value: String(pgRelay) },
                ],
              },
            ],
          },
        },
      },
    });
    const rollout = () =>
      kubectl(['rollout', 'status', '-n', names.agents, 'deployment/report-deploy', '--timeout=180s']);
    /** The Deployment's one pod once it is alone (a replaced one has gone) and its agent has run. */
    const settledPod = (other?: string) =>
      until(
        'the Deployment to settle on one pod whose agent ran',
        async () => {
          const pods = JSON.parse(
            await kubectl(['get', 'pods', '-n', names.agents, '-l', 'workload=report-deploy', '-o', 'json']),
          ) as {
            items: {
              metadata: { name: string };
              spec: { initContainers?: { name: string; image: string; restartPolicy?: string }[] };
              status: { initContainerStatuses?: { name: string; restartCount?: number }[] };
            }[];
          };
          if (pods.items.length !== 1 || pods.items[0]!.metadata.name === other) return undefined;
          const pod = pods.items[0]!;
          const logs = agentSections(
            await kubectl(['logs', '-n', names.agents, pod.metadata.name, '-c', 'agent']).catch(() => ''),
          );
          return logs.direct !== undefined ? { pod, logs } : undefined;
        },
        180_000,
      );
    const check = ({ pod, logs }: Awaited<ReturnType<typeof settledPod>>) => {
      assert.deepEqual(
        (pod.spec.initContainers ?? []).map((c) => [c.name, c.image, c.restartPolicy ?? '']),
        [
          ['chaperone-init', node.chaperoneImages.init, ''],
          ['chaperone', node.chaperoneImages.sidecar, 'Always'],
        ],
      );
      assert.equal(pod.status.initContainerStatuses?.find((c) => c.name === 'chaperone')?.restartCount, 0);
      assert.match(logs.query ?? '', /^row 1\|Ada Lovelace$/m, JSON.stringify(logs));
      assert.match(logs.drop ?? '', /^error .*not allowed/m);
      assert.doesNotMatch(logs.direct ?? '', /ready|row/);
    };
    await rollout();
    const first = await settledPod();
    check(first);
    // A rollout replaces the pod: the ReplicaSet controller creates a new one from the new template.
    await kubectl(['rollout', 'restart', '-n', names.agents, 'deployment/report-deploy']);
    await rollout();
    const second = await settledPod(first.pod.metadata.name);
    check(second);
    // Scaled to zero, the second pod's sidecar flushes too; both pods' sessions verify.
    await kubectl(['scale', '-n', names.agents, 'deployment/report-deploy', '--replicas=0']);
    for (const pod of [first.pod.metadata.name, second.pod.metadata.name]) {
      const ls = await until(`the sessions of ${pod} in the store index`, async () => {
        const r = await cli(['sessions', 'ls', '--namespace', names.agents, '--pod', pod, '--json']);
        return r.code === 0 && r.out.trim().split('\n').length >= 3 ? r.out : undefined;
      });
      assert.equal(ls.trim().split('\n').length, 3, ls);
      const verify = await cli([
        'verify',
        '--all',
        '--namespace',
        names.agents,
        '--pod',
        pod,
        '--public-key',
        publicKeyFile,
      ]);
      assert.equal(verify.code, 0, verify.out);
    }
  });

  test('the safety net dropped nothing', async (t) => {
    if (imagesMissing) return t.skip('no Chaperone images: run `make images`');
    assert.equal(await safetyNetDrops(), 0);
  });
});
