// The story `make demo` tells and test/e2e/demo.test.ts checks, on the real node (test/env/node.ts):
// a platform team publishes the chart to a registry and installs Chaperone with helm, opts a
// namespace in and applies a SessionPolicy; an agent runs as a Job, its pod injected by the webhook
// and run by kubelet; an auditor lists, verifies and replays the recording from MinIO. Every step
// checks what it shows and throws DemoFailure when the product does not behave as described.
import { randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { GetObjectLockConfigurationCommand } from '@aws-sdk/client-s3';
import { stringify } from 'yaml';
import { s3ClientFor } from '../env/minio.ts';
import type { KubeInfo, MinioInfo, NodeInfo, PostgresInfo } from '../env/types.ts';
import { until as poll } from '../testing/until.ts';
import {
  AGENT_LABELS,
  agentJob,
  agentSections,
  auditorCli,
  CARD,
  helmFor,
  helmRelease,
  jobOutcome,
  jobPodName,
  kubectlFor,
  POLICY_NAME,
  policyReady,
  pushChart,
} from './testing/cluster.ts';
import { type StoryServers, startStoryServers } from './testing/story.ts';

/** Chaperone's images the story needs in the node's registry (`make images`). */
const IMAGES = ['operator', 'webhook', 'sidecar', 'init', 'cli'] as const;

export class DemoFailure extends Error {
  override name = 'DemoFailure';
}

export interface DemoEnv {
  kube: KubeInfo;
  node: NodeInfo;
  minio: MinioInfo;
  postgres: PostgresInfo;
}

export interface DemoOptions {
  env: DemoEnv;
  /** Everything the newcomer reads. */
  print: (text: string) => void;
  /** This run's files: values, SessionPolicy, Job, logs, the recording public key. */
  workDir: string;
}

export interface DemoReport {
  namespace: string;
  sessionIds: string[];
  agent: Record<string, string>;
  auditor: { ls: string; verify: string; cat: string };
}

function check(condition: unknown, message: string): asserts condition {
  if (!condition) throw new DemoFailure(message);
}

async function until<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 180_000): Promise<T> {
  try {
    return await poll(what, probe, { timeoutMs, intervalMs: 500 });
  } catch (error) {
    throw new DemoFailure((error as Error).message);
  }
}

export async function runDemo(options: DemoOptions): Promise<DemoReport> {
  const { env, print, workDir } = options;
  const id = randomBytes(3).toString('hex');
  // The chart is installed once per cluster (its CRDs and cluster roles are the release's): fixed
  // release and namespace, so a later install adopts the CRDs this one keeps.
  const names = {
    release: 'chaperone',
    system: 'chaperone-system',
    agents: `agents-${id}`,
    bucket: 'chaperone-recordings',
    prefix: `demo-${id}`,
  };
  const kubectlRaw = kubectlFor(env.kube);
  const kubectl = (args: string[], input?: string) =>
    kubectlRaw(args, input).catch((error: Error) => {
      throw new DemoFailure(error.message);
    });
  const helm = helmFor(env.kube);
  const cli = auditorCli(env.minio, `s3://${names.bucket}/${names.prefix}`);
  let stepNo = 0;
  const step = (title: string) => print(`\n${++stepNo}. ${title}\n`);
  const say = (text: string) => print(`   ${text.trimEnd().replaceAll('\n', '\n   ')}\n`);
  let servers: StoryServers | undefined;
  let installed = false;

  try {
    step('A local cluster: etcd, kube-apiserver, kube-controller-manager and a real node');
    say(
      '(kubelet, containerd and runc, kube-proxy, CoreDNS, kube-router for NetworkPolicies, an OCI registry)',
    );
    say(`$ kubectl get nodes -o wide   (kubeconfig: ${env.kube.kubeconfigPath})`);
    const nodes = await kubectl(['get', 'nodes', '-o', 'wide']);
    say(nodes);
    check(/\sReady\s/.test(nodes), 'the node is not Ready');

    step(`Chaperone's images, built by \`make images\` and pushed to the node's registry`);
    const images = env.node.chaperoneImages;
    const missing = IMAGES.filter((name) => !images[name]);
    check(
      missing.length === 0,
      `images missing from the registry: ${missing.join(', ')} (run \`make images\`)`,
    );
    for (const name of IMAGES) say(`${name.padEnd(9)} ${images[name]}`);

    step('Outside the cluster: PostgreSQL with the orders database, and MinIO for the recordings');
    servers = await startStoryServers(env, id, workDir);
    const { db, pg, s3, publicKeyFile } = servers;
    say(`database ${db.name} with a customer's card number, owned by role ${db.user}`);
    say('(its password goes only into a Secret the sidecar mounts; the agent never sees it)');
    say(`PostgreSQL at ${env.node.ip}:${pg.port}, MinIO at ${env.node.ip}:${s3.port} (the node's address)`);

    step('Publish the chart to the registry, as a release pipeline does');
    const chart = await pushChart(env.kube, env.node).catch((error: Error) => {
      throw new DemoFailure(error.message);
    });
    say(
      `$ helm package charts/chaperone && helm push chaperone-${chart.version}.tgz ${chart.ref.replace(/\/chaperone$/, '')}`,
    );
    say(`pushed ${chart.ref}:${chart.version}`);

    step('Install Chaperone with helm from the registry');
    const values = await servers.chartValues();
    const release = {
      kube: env.kube,
      release: names.release,
      namespace: names.system,
      chart,
      values,
      workDir,
    };
    say(`values for this cluster (${join(workDir, 'values-install-*.yaml')}):`);
    say(stringify(values));
    const install = await helmRelease('install', release);
    installed = install.code === 0;
    say(`$ ${install.command.replace(/ --kubeconfig=\S+/, '')}`);
    check(install.code === 0, `helm install failed: ${install.stderr}`);
    const notes = install.stdout.slice(install.stdout.indexOf('NOTES:'));
    say(notes.split('\n').slice(0, 6).join('\n'));
    say(`$ kubectl get pods -n ${names.system}`);
    const pods = await kubectl(['get', 'pods', '-n', names.system]);
    say(pods);
    check(
      (pods.match(/\s1\/1\s+Running\s/g) ?? []).length >= 3,
      'the operator and webhook pods are not all Running',
    );

    step('helm test: a pod of the release proves that the webhook injects');
    say(`$ helm test ${names.release} -n ${names.system}`);
    const tested = await helm(['test', names.release, '--namespace', names.system, '--timeout', '4m']);
    say(`$ kubectl logs -n ${names.system} ${names.release}-injection-test`);
    const podLog = await kubectlRaw(['logs', '-n', names.system, `${names.release}-injection-test`]).catch(
      (e: Error) => e.message,
    );
    say(podLog);
    check(
      tested.code === 0 && /^injection works$/m.test(podLog),
      `helm test failed: ${tested.stdout}${tested.stderr}`,
    );

    step('Opt a namespace in and apply a SessionPolicy');
    const objects = servers.namespaceObjects({
      namespace: names.agents,
      bucket: names.bucket,
      prefix: names.prefix,
    });
    const policyFile = join(workDir, 'sessionpolicy.yaml');
    await writeFile(policyFile, objects.map((o) => stringify(o)).join('---\n'));
    say(`$ kubectl create namespace ${names.agents}`);
    say(await kubectl(['create', 'namespace', names.agents]));
    say(
      `$ kubectl apply -f ${policyFile}   # ServiceAccount, Secrets (db login, S3 keys, signing key), SessionPolicy`,
    );
    say(await kubectl(['apply', '-f', policyFile]));
    say(
      'the policy: Postgres target orders-db on 127.0.0.1:15432 in the pod, service-account token required,',
    );
    say('DROP/TRUNCATE blocked, card numbers masked, recording to MinIO with Object Lock (7 days)');
    await policyReady(kubectl, names.agents).catch(async (error: Error) => {
      const status = await kubectl(['get', '-n', names.agents, `sessionpolicy/${POLICY_NAME}`, '-o', 'yaml']);
      throw new DemoFailure(`${error.message}\n${status}`);
    });
    say(`$ kubectl get sessionpolicies -n ${names.agents}`);
    say(await kubectl(['get', 'sessionpolicies', '-n', names.agents]));
    const children = await kubectl(['get', 'configmaps,networkpolicies', '-n', names.agents, '-o', 'name']);
    check(/configmap\/chaperone-policy-/.test(children), 'the operator rendered no sidecar ConfigMap');
    check(/networkpolicy\.networking\.k8s\.io\/chaperone-policy-/.test(children), 'no NetworkPolicy');
    say(
      `rendered by the operator: ${children
        .trim()
        .split('\n')
        .filter((l) => l.includes('chaperone-policy'))
        .join(', ')}`,
    );
    const lock = await s3ClientFor(env.minio).send(
      new GetObjectLockConfigurationCommand({ Bucket: names.bucket }),
    );
    check(lock.ObjectLockConfiguration?.ObjectLockEnabled === 'Enabled', 'the bucket has no Object Lock');
    say(`bucket ${names.bucket}: Object Lock enabled`);
    say(`$ kubectl label namespace ${names.agents} chaperone.dev/recording=enabled`);
    say(await kubectl(['label', 'namespace', names.agents, 'chaperone.dev/recording=enabled']));

    step('Run the agent as a Job: the webhook injects the sidecar, kubelet runs the pod');
    const job = agentJob({ name: 'report', namespace: names.agents, node: env.node, db, pgPort: pg.port });
    const jobFile = join(workDir, 'agent-job.yaml');
    await writeFile(jobFile, stringify(job));
    say(`$ kubectl apply -f ${jobFile}   # the agent: Node speaking the Postgres protocol, as UID 1000`);
    say(await kubectl(['apply', '-f', jobFile]));
    const podName = await until(
      'the Job to create its pod',
      async () => (await jobPodName(kubectl, names.agents, 'report')) || undefined,
    );
    const pod = JSON.parse(await kubectl(['get', 'pod', '-n', names.agents, podName, '-o', 'json'])) as {
      spec: { initContainers?: { name: string; image: string; restartPolicy?: string }[] };
    };
    const init = pod.spec.initContainers ?? [];
    check(
      init.some((c) => c.name === 'chaperone-init') &&
        init.some((c) => c.name === 'chaperone' && c.restartPolicy === 'Always'),
      'the pod was not injected',
    );
    say(`pod ${podName}, injected initContainers:`);
    for (const c of init)
      say(`  ${c.name}${c.restartPolicy === 'Always' ? ' (native sidecar)' : ''}  ${c.image}`);
    const refused = await kubectlRaw(
      ['apply', '--dry-run=server', '-f', '-'],
      JSON.stringify({
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: { name: 'sneaky-agent', namespace: names.agents, labels: AGENT_LABELS },
        spec: {
          hostNetwork: true,
          securityContext: { runAsUser: 1000 },
          containers: [{ name: 'agent', image: env.node.chaperoneImages.cli, command: ['true'] }],
        },
      }),
    ).then(
      () => undefined,
      (error: Error) => error.message,
    );
    check(refused, 'a hostNetwork pod (which could bypass capture) was admitted');
    say(`a hostNetwork pod is refused: ${refused.replace(/^kubectl .*? failed: /, '')}`);
    const outcome = await until('the Job to finish', () => jobOutcome(kubectlRaw, names.agents, 'report'));
    const logs = await kubectl(['logs', '-n', names.agents, podName, '-c', 'agent']);
    await writeFile(join(workDir, 'agent.log'), logs);
    await writeFile(
      join(workDir, 'sidecar.log'),
      await kubectlRaw(['logs', '-n', names.agents, podName, '-c', 'chaperone']).catch(
        (e: Error) => e.message,
      ),
    );
    say(`$ kubectl get job -n ${names.agents} report`);
    say(await kubectl(['get', 'job', '-n', names.agents, 'report']));
    check(outcome === 'Complete', `the agent Job ${outcome}: ${logs}`);
    const sections = agentSections(logs);
    const show = (name: string) => (sections[name] ?? '(no output)').trim();

    step(`What the agent saw ($ kubectl logs -n ${names.agents} ${podName} -c agent)`);
    say(`a normal query through 127.0.0.1:15432:\n${show('query')}`);
    check(/^row 1\|Ada Lovelace$/m.test(show('query')), 'the normal query did not return rows');
    say(`\nthe card number (masked by the sidecar):\n${show('card')}`);
    check(/^row Ada Lovelace\|/m.test(show('card')), 'the card query failed');
    check(!/4111 ?1111 ?1111 ?1111/.test(show('card')), 'the card number reached the agent');
    say(`\nDROP TABLE customers (blocked by the guardrail):\n${show('drop')}`);
    check(/^error .*not allowed/m.test(show('drop')), 'DROP TABLE was not refused');
    say(`\nstraight to PostgreSQL at ${env.node.ip}:${pg.port}, around the sidecar:\n${show('direct')}`);
    check(!/ready|row/.test(show('direct')), 'the agent reached the database directly');
    check(/^error E|^timeout/m.test(show('direct')), 'the direct connection was not refused');
    say("(refused by chaperone-init's iptables rules in the pod: only the sidecar's UID may leave it)");

    step('The auditor: list, verify and replay the recording from MinIO');
    say(`(recordings: s3://${names.bucket}/${names.prefix}; public key ${publicKeyFile})`);
    const ls = await until('the sessions in the store index', async () => {
      const r = await cli(['sessions', 'ls', '--namespace', names.agents, '--json']);
      const lines = r.stdout.trim().split('\n').filter(Boolean);
      return r.code === 0 && lines.length >= 3 ? lines : undefined;
    });
    const sessions = ls.map((l) => JSON.parse(l) as { sessionId: string });
    say(`$ chaperone sessions ls --namespace ${names.agents}`);
    const table = await cli(['sessions', 'ls', '--namespace', names.agents]);
    say(table.stdout);
    check(
      table.stdout.includes(`system:serviceaccount:${names.agents}:report-agent`),
      'the sessions do not name the agent identity',
    );
    say(`$ chaperone verify --all --namespace ${names.agents} --public-key ${publicKeyFile}`);
    const verify = await cli(['verify', '--all', '--namespace', names.agents, '--public-key', publicKeyFile]);
    say(verify.stdout + verify.stderr);
    check(verify.code === 0, `chaperone verify failed (exit ${verify.code})`);
    const replays: { id: string; out: string }[] = [];
    for (const s of sessions) {
      const r = await cli(['sessions', 'cat', s.sessionId]);
      check(r.code === 0, `chaperone sessions cat ${s.sessionId} failed: ${r.stderr}`);
      replays.push({ id: s.sessionId, out: r.stdout });
    }
    const cardReplay = replays.find((r) => r.out.includes('card_number'));
    const dropReplay = replays.find((r) => r.out.includes('DROP TABLE customers'));
    check(cardReplay, 'no recorded session shows the card query');
    check(dropReplay, 'no recorded session shows the DROP TABLE');
    for (const replay of [cardReplay, dropReplay]) {
      say(`$ chaperone sessions cat ${replay.id}`);
      say(replay.out);
    }
    check(/masked/.test(cardReplay.out), 'the replay does not show the masking');
    check(!replays.some((r) => r.out.includes(CARD)), 'the recording holds the unmasked card number');
    check(/policy\.blocked/.test(dropReplay.out), 'the replay does not show the blocked statement');
    return {
      namespace: names.agents,
      sessionIds: sessions.map((s) => s.sessionId),
      agent: sections,
      auditor: { ls: table.stdout, verify: verify.stdout, cat: `${cardReplay.out}${dropReplay.out}` },
    };
  } finally {
    step('Clean up: helm uninstall, the namespaces, the database');
    const quiet = async (what: string, fn: () => Promise<unknown>) => {
      try {
        await fn();
      } catch (error) {
        say(`cleanup: ${what}: ${(error as Error).message}`);
      }
    };
    await quiet('agents namespace', () => kubectlRaw(['delete', 'namespace', names.agents, '--wait=false']));
    if (installed) {
      say(`$ helm uninstall ${names.release} -n ${names.system}`);
      await quiet('helm uninstall', async () => {
        const r = await helm([
          'uninstall',
          names.release,
          '--namespace',
          names.system,
          '--wait',
          '--timeout',
          '3m',
        ]);
        if (r.code !== 0) throw new Error(r.stderr);
        const left = await kubectlRaw([
          'get',
          'mutatingwebhookconfigurations,validatingwebhookconfigurations',
          '-o',
          'name',
        ]);
        say(
          left.trim()
            ? `left behind: ${left}`
            : 'no webhook configuration left: the cluster admits pods as before',
        );
        say('kept: the CRDs (helm.sh/resource-policy keep) and the recordings in MinIO');
      });
      await quiet('system namespace', () => kubectlRaw(['delete', 'namespace', names.system, '--wait=true']));
    }
    await servers?.close((what, error) => say(`cleanup: ${what}: ${error.message}`));
  }
}
