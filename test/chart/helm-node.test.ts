// The chart on the real node (test/env/node.ts), installed as users install it: packaged and pushed
// as an OCI artifact to the node's registry, `helm install` from oci:// with the images `make images`
// built (pulled by kubelet from the same registry). Then, on the running release: `helm test`; an
// injected Job completes and its recording verifies; `helm upgrade` with changed values while pods
// are being created and a session runs; a webhook replica deleted (drained) and one SIGKILLed
// during pod creation; `helm rollback`; `helm uninstall`, which leaves no webhook configuration and
// keeps CRDs and recordings.
// The steps share one release, so they run in order. Runs only with the `node` part and the images.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import { CoreV1Api, type V1Pod } from '@kubernetes/client-node';
import { parse } from 'yaml';
import {
  AGENT_LABELS,
  AGENT_SERVICE_ACCOUNT,
  agentJob,
  agentSections,
  auditorCli,
  CARD,
  helmFor,
  helmRelease,
  jobOutcome,
  jobPodName,
  kubectlFor,
  policyReady,
  pushChart,
} from '../e2e/testing/cluster.ts';
import { freshWorkDir, type StoryServers, startStoryServers } from '../e2e/testing/story.ts';
import { testEnv } from '../env/index.ts';
import { kubeConfigFor } from '../env/kube-kubeconfig.ts';
import { safetyNetDrops } from '../env/node.ts';
import { clusterExclusiveSkip } from '../testing/exclusive.ts';
import { until } from '../testing/until.ts';

const exec = promisify(execFile);
const skip = clusterExclusiveSkip();

// At the top level: the parts this file starts itself stop after the whole file.
const env = skip ? undefined : await testEnv(['kube', 'node', 'minio', 'postgres']);

describe('the chart on the real node, from the registry', { skip }, () => {
  const id = randomBytes(3).toString('hex');
  const release = 'chaperone';
  // Fixed, as in the demo story: the CRDs kept after an uninstall belong to this release and
  // namespace, and the next install (another file on the same cluster) adopts them.
  const system = 'chaperone-system';
  const agents = `agents-${id}`;
  const bucket = 'chaperone-recordings';
  const prefix = `chart-${id}`;
  const imagesMissing = !env?.node.chaperoneImages.webhook || !env.node.chaperoneImages.cli;
  const kube = env?.kube;
  const node = env?.node;
  const kubectl = kube ? kubectlFor(kube) : async () => '';
  const helm = kube ? helmFor(kube) : undefined;
  let workDir = '';
  let chart: { ref: string; version: string };
  let values: Record<string, unknown>;
  let servers: StoryServers | undefined;
  let db: StoryServers['db'];
  let pgPort = 0;
  let publicKeyFile = '';
  const wait = { timeoutMs: 240_000, intervalMs: 500 };

  const apply = (objects: unknown[]) =>
    kubectl(['apply', '-f', '-'], objects.map((o) => JSON.stringify(o)).join('\n'));
  const webhookPods = async () =>
    (
      JSON.parse(
        await kubectl([
          'get',
          'pods',
          '-n',
          system,
          '-l',
          'app.kubernetes.io/component=webhook',
          '-o',
          'json',
        ]),
      ) as {
        items: {
          metadata: { name: string; deletionTimestamp?: string };
          status: { containerStatuses?: { containerID?: string; ready: boolean }[] };
        }[];
      }
    ).items;
  const release_ = (extraValues: Record<string, unknown> = {}) => ({
    kube: kube!,
    release,
    namespace: system,
    chart,
    values: merge(values, extraValues),
    workDir,
  });

  /** The webhook's config as the chart rendered it into its ConfigMap. */
  const webhookConfig = async () =>
    parse(
      await kubectl([
        'get',
        'configmap',
        '-n',
        system,
        'chaperone-webhook',
        '-o',
        'jsonpath={.data.webhook\\.yaml}',
      ]),
    ) as { logLevel: string; resources: { sidecar: { limits: { memory: string } } } };

  /**
   * Creates agent pods (dryRun=All: the whole admission chain, the webhook included, and nothing
   * stored) one after another until stopped; counts those admitted and injected, keeps every error.
   */
  function createPodsUntilStopped(clients = 1) {
    const core = kubeConfigFor(kube!).makeApiClient(CoreV1Api);
    const pod: V1Pod = {
      metadata: { labels: { ...AGENT_LABELS } },
      spec: {
        serviceAccountName: AGENT_SERVICE_ACCOUNT,
        restartPolicy: 'Never',
        securityContext: { runAsUser: 1000, runAsGroup: 1000 },
        containers: [{ name: 'agent', image: node!.chaperoneImages.cli!, command: ['true'] }],
      },
    };
    const state = { stopped: false, sent: 0, injected: 0, errors: [] as string[] };
    const one = async () => {
      while (!state.stopped) {
        try {
          // Every other pod has a name generated by the apiserver between mutating and validating
          // admission, as a user's `kubectl create` of a manifest with generateName does.
          const n = ++state.sent;
          const named = n % 2 === 0 ? { name: `admission-${n}` } : { generateName: 'admission-gen-' };
          const body = { ...pod, metadata: { ...pod.metadata, ...named } };
          const made = await core.createNamespacedPod({ namespace: agents, body, dryRun: 'All' });
          if (made.spec?.initContainers?.some((c) => c.name === 'chaperone')) state.injected++;
          else state.errors.push('admitted without the sidecar');
        } catch (error) {
          state.errors.push(String((error as { body?: string }).body ?? error));
        }
      }
    };
    const done = Promise.all(Array.from({ length: clients }, one));
    return {
      state,
      stop: async () => {
        state.stopped = true;
        await done;
        return state;
      },
    };
  }

  before(async () => {
    if (!env || imagesMissing) return;
    workDir = await freshWorkDir(join(homedir(), '.cache', 'chaperone', 'chart-node'));
    servers = await startStoryServers(env, id, workDir);
    const s3 = servers.s3;
    ({ db, publicKeyFile } = servers);
    pgPort = servers.pg.port;
    values = await servers.chartValues();
    // The search index builder, run on demand by its test (a schedule that never fires by itself here).
    values.indexer = {
      enabled: true,
      schedule: '0 0 1 1 *',
      store: {
        url: `s3://${bucket}/${prefix}`,
        endpoint: `http://${env.node.ip}:${s3.port}`,
        region: env.minio.region,
        credentials: { existingSecret: 'indexer-s3' },
      },
      tolerations: (values.operator as { tolerations: unknown[] }).tolerations,
    };
    await kubectl(['create', 'namespace', agents]);
    // Objects of the agents' namespace wait for the CRDs (the chart installs them); the Secrets now.
    pendingPolicy = servers.namespaceObjects({ namespace: agents, bucket, prefix });
  });
  let pendingPolicy: Record<string, unknown>[] = [];

  after(async () => {
    if (!env || imagesMissing) return;
    const quiet = (p: Promise<unknown>) => p.catch(() => {});
    await quiet(kubectl(['delete', 'namespace', agents, '--wait=false']));
    await quiet(helm!(['uninstall', release, '--namespace', system]));
    await quiet(kubectl(['delete', 'namespace', system, '--wait=true', '--timeout=120s']));
    await servers?.close();
  });

  test('helm push, then helm install from oci://: the operator and the webhook become Ready', async (t) => {
    if (imagesMissing) return t.skip('no Chaperone images: run `make images`');
    chart = await pushChart(kube!, node!);
    assert.match(chart.ref, /^oci:\/\/127\.0\.0\.1:\d+\/charts\/chaperone$/);
    const installed = await helmRelease('install', release_());
    await writeFile(
      join(workDir, 'install.txt'),
      `${installed.command}\n${installed.stdout}${installed.stderr}`,
    );
    assert.equal(installed.code, 0, installed.stderr);
    for (const name of ['chaperone-operator', 'chaperone-webhook']) {
      const d = JSON.parse(await kubectl(['get', '-n', system, `deployment/${name}`, '-o', 'json'])) as {
        spec: { replicas: number; template: { spec: { containers: { image: string }[] } } };
        status: { readyReplicas?: number };
      };
      assert.equal(d.status.readyReplicas, d.spec.replicas, name);
      assert.match(d.spec.template.spec.containers[0]!.image, new RegExp(`^${node!.registry}/chaperone/`));
    }
    // The operator filled caBundle of the chart's webhook configurations.
    const mutating = async () =>
      JSON.parse(
        await kubectl([
          'get',
          'mutatingwebhookconfigurations',
          '-l',
          `app.kubernetes.io/instance=${release}`,
          '-o',
          'json',
        ]),
      ) as { items: { webhooks: { clientConfig: { caBundle?: string } }[] }[] };
    assert.equal((await mutating()).items.length, 1);
    await until(
      'caBundle in every webhook',
      async () => (await mutating()).items[0]!.webhooks.every((w) => w.clientConfig.caBundle),
      wait,
    );
  });

  test('helm test proves injection in the installed cluster', async (t) => {
    if (imagesMissing) return t.skip('no Chaperone images: run `make images`');
    const r = await helm!(['test', release, '--namespace', system, '--timeout', '4m']);
    const log = await kubectl(['logs', '-n', system, `${release}-injection-test`]);
    await writeFile(join(workDir, 'helm-test.txt'), `${r.stdout}${r.stderr}\n--- pod log\n${log}`);
    assert.equal(r.code, 0, r.stdout + r.stderr + log);
    assert.doesNotMatch(r.stdout, /Phase:\s+Failed/);
    const out = log;
    assert.match(out, /initContainers: chaperone-init, chaperone \(native sidecar\)/);
    assert.match(out, /^injection works$/m);
    // The test's throwaway namespace went with its success.
    await until(
      'the injection-test namespace to go',
      async () => !(await kubectl(['get', 'namespaces', '-o', 'name'])).includes(`${release}-injection-test`),
      wait,
    );
  });

  let agentOut: Record<string, string> = {};
  test('an injected Job completes and its recording verifies', async (t) => {
    if (imagesMissing) return t.skip('no Chaperone images: run `make images`');
    await apply(pendingPolicy);
    await policyReady(kubectl, agents);
    await kubectl(['label', 'namespace', agents, 'chaperone.dev/recording=enabled']);
    await apply([agentJob({ name: 'report', namespace: agents, node: node!, db, pgPort })]);
    const outcome = await until('the Job to finish', () => jobOutcome(kubectl, agents, 'report'), wait);
    const logs = await kubectl(['logs', '-n', agents, 'job/report', '-c', 'agent']).catch(
      (e: Error) => e.message,
    );
    await writeFile(join(workDir, 'agent.log'), logs);
    assert.equal(outcome, 'Complete', logs);
    agentOut = agentSections(logs);
    assert.match(agentOut.query ?? '', /^row 1\|Ada Lovelace$/m);
    assert.match(agentOut.card ?? '', /^row Ada Lovelace\|/m);
    assert.doesNotMatch(agentOut.card ?? '', /4111 ?1111/);
    assert.match(agentOut.drop ?? '', /^error .*not allowed/m);
    assert.match(agentOut.direct ?? '', /^error E(CONNREFUSED|HOSTUNREACH|TIMEDOUT)|^timeout/m);
    const cli = auditorCli(env!.minio, `s3://${bucket}/${prefix}`);
    const ls = await until(
      'three sessions in the store index',
      async () => {
        const r = await cli(['sessions', 'ls', '--namespace', agents, '--json']);
        const lines = r.stdout.trim().split('\n').filter(Boolean);
        return r.code === 0 && lines.length >= 3 ? lines : undefined;
      },
      wait,
    );
    assert.equal(ls.length, 3);
    const verify = await cli(['verify', '--all', '--namespace', agents, '--public-key', publicKeyFile]);
    assert.equal(verify.code, 0, verify.stdout + verify.stderr);
    const cats = await Promise.all(
      ls.map((l) => cli(['sessions', 'cat', (JSON.parse(l) as { sessionId: string }).sessionId])),
    );
    assert.ok(
      cats.some((c) => c.stdout.includes('DROP TABLE customers') && /policy\.blocked/.test(c.stdout)),
    );
    assert.ok(!cats.some((c) => c.stdout.includes(CARD)));
  });

  test('the indexer CronJob builds the search index of the recordings', async (t) => {
    if (imagesMissing) return t.skip('no Chaperone images: run `make images`');
    await kubectl([
      'create',
      'secret',
      'generic',
      'indexer-s3',
      '-n',
      system,
      `--from-literal=accessKeyId=${env!.minio.accessKeyId}`,
      `--from-literal=secretAccessKey=${env!.minio.secretAccessKey}`,
    ]);
    await kubectl(['create', 'job', '-n', system, '--from=cronjob/chaperone-indexer', 'indexer-now']);
    const outcome = await until(
      'the indexer Job to finish',
      () => jobOutcome(kubectl, system, 'indexer-now'),
      wait,
    );
    const logs = await kubectl(['logs', '-n', system, 'job/indexer-now']).catch((e: Error) => e.message);
    await writeFile(join(workDir, 'indexer.log'), logs);
    assert.equal(outcome, 'Complete', logs);
    const report = JSON.parse(logs.trim().split('\n').at(-1) ?? '{}') as {
      sessions?: number;
      partitionsWritten?: number;
    };
    // The three sessions of the injected Job, in at least one Parquet partition written now.
    assert.ok((report.sessions ?? 0) >= 3, logs);
    assert.ok((report.partitionsWritten ?? 0) >= 1, logs);
    // An auditor's search reads what it wrote (and index objects it did not see: none here).
    const search = await auditorCli(
      env!.minio,
      `s3://${bucket}/${prefix}`,
    )(['sessions', 'search', '--namespace', agents, '--json']);
    assert.equal(search.code, 0, search.stderr);
    assert.equal(search.stdout.trim().split('\n').filter(Boolean).length, 3, search.stdout);
    await kubectl(['delete', 'job', '-n', system, 'indexer-now', '--wait=false']);
  });

  // Old and new replicas render different sidecar resources for a while: each accepts what the
  // other rendered through the renderer registry (webhook/renderer-registry.ts).
  test('helm upgrade with changed values while pods are created and a session runs: no admission error', async (t) => {
    if (imagesMissing) return t.skip('no Chaperone images: run `make images`');
    // A session held open across the upgrade: one statement every 200 ms for 150 s.
    await apply([agentJob({ name: 'held', namespace: agents, node: node!, db, pgPort, holdSeconds: 150 })]);
    await until(
      'the held session to start',
      async () => {
        const pods = JSON.parse(
          await kubectl(['get', 'pods', '-n', agents, '-l', 'job-name=held', '-o', 'json']),
        ) as { items: { status: { containerStatuses?: { name: string; started?: boolean }[] } }[] };
        return pods.items[0]?.status.containerStatuses?.find((c) => c.name === 'agent')?.started;
      },
      wait,
    );
    const heldPod = await jobPodName(kubectl, agents, 'held');
    const before = new Set((await webhookPods()).map((p) => p.metadata.name));
    const creating = createPodsUntilStopped();
    await until('pods admitted before the upgrade', () => creating.state.injected >= 3, wait);
    // Changed values: the webhook's config (its checksum rolls every replica) and the sidecar's.
    const upgraded = await helmRelease(
      'upgrade',
      release_({ webhook: { logLevel: 'debug' }, sidecar: { resources: { limits: { memory: '1100Mi' } } } }),
    );
    const admittedDuring = creating.state.injected;
    await until('pods admitted after the upgrade', () => creating.state.injected >= admittedDuring + 3, wait);
    const state = await creating.stop();
    await writeFile(
      join(workDir, 'upgrade.txt'),
      `${upgraded.command}\n${upgraded.stdout}${upgraded.stderr}`,
    );
    assert.equal(upgraded.code, 0, upgraded.stderr);
    assert.deepEqual(
      state.errors,
      [],
      `${state.errors.length} admission errors of ${state.injected + state.errors.length}`,
    );
    // Replaced replicas may still be draining (terminating); the serving ones are all new.
    const after_ = (await webhookPods())
      .filter((p) => !p.metadata.deletionTimestamp)
      .map((p) => p.metadata.name);
    assert.ok(
      after_.every((n) => !before.has(n)),
      'every webhook replica was replaced',
    );
    // The old and the new rendering were both published (the upgrade changed what is rendered).
    const renderers = (
      await kubectl(['get', 'configmaps', '-n', system, '-l', 'chaperone.dev/renderer=true', '-o', 'name'])
    )
      .trim()
      .split('\n')
      .filter(Boolean);
    assert.ok(renderers.length >= 2, renderers.join(' '));
    const config = await webhookConfig();
    assert.equal(config.logLevel, 'debug');
    assert.equal(config.resources.sidecar.limits.memory, '1100Mi');
    t.diagnostic(
      `${state.injected} pods admitted and injected while the webhook rolled, ${state.errors.length} errors`,
    );

    // The session that ran through the upgrade kept running: every statement answered, no restart.
    const outcome = await until('the held Job to finish', () => jobOutcome(kubectl, agents, 'held'), wait);
    const logs = await kubectl(['logs', '-n', agents, heldPod, '-c', 'agent']);
    await writeFile(join(workDir, 'held-agent.log'), logs);
    assert.equal(outcome, 'Complete', logs);
    const held = agentSections(logs).held ?? '';
    const m = /answers=(\d+) errors=(\d+) end=(\S+)/.exec(held);
    assert.ok(m, logs);
    assert.ok(Number(m[1]) > 100, held);
    assert.equal(m[2], '0', held);
    assert.equal(m[3], 'exit', held);
    const pod = JSON.parse(await kubectl(['get', 'pod', '-n', agents, heldPod, '-o', 'json'])) as {
      status: { initContainerStatuses?: { name: string; restartCount: number }[] };
    };
    assert.equal(pod.status.initContainerStatuses?.find((c) => c.name === 'chaperone')?.restartCount, 0);
  });

  test('a webhook replica deleted while 4 clients create pods: no admission error', async (t) => {
    if (imagesMissing) return t.skip('no Chaperone images: run `make images`');
    const creating = createPodsUntilStopped(4);
    await until('pods admitted', () => creating.state.injected >= 3, wait);
    const victim = (await webhookPods()).find((p) => !p.metadata.deletionTimestamp)!.metadata.name;
    // As a drain or an eviction does: TERM, out of the Service's endpoints, preStop, then gone.
    await kubectl(['delete', 'pod', '-n', system, victim, '--wait=true']);
    await kubectl(['rollout', 'status', '-n', system, 'deployment/chaperone-webhook', '--timeout=180s']);
    const count = creating.state.injected;
    await until('pods admitted after the replacement', () => creating.state.injected >= count + 3, wait);
    const state = await creating.stop();
    t.diagnostic(`${state.injected} admitted, ${state.errors.length} errors while a replica was replaced`);
    assert.deepEqual(
      state.errors,
      [],
      `${state.errors.length} admission errors of ${state.injected + state.errors.length}`,
    );
  });

  // A known limit, kept visible: the requests a SIGKILLed replica was answering are reset, and the
  // apiserver does not retry an admission call (a POST); measured 0 to 3 errors in 400-660 with 4
  // clients. A graceful stop (the test above: drain, eviction, rollout) loses none.
  test('a webhook replica killed (SIGKILL) while 4 clients create pods: no admission error', {
    todo: 'admissions in flight on the killed replica are reset and the apiserver does not retry them',
  }, async (t) => {
    if (imagesMissing) return t.skip('no Chaperone images: run `make images`');
    const creating = createPodsUntilStopped(4);
    await until('pods admitted', () => creating.state.injected >= 3, wait);
    const victim = (await webhookPods()).find(
      (p) => !p.metadata.deletionTimestamp && p.status.containerStatuses?.[0]?.ready,
    )!;
    const containerId = victim.status.containerStatuses![0]!.containerID!.replace(/^containerd:\/\//, '');
    await exec('ctr', [
      '--address',
      node!.containerdAddress,
      '-n',
      'k8s.io',
      'task',
      'kill',
      '-s',
      'SIGKILL',
      containerId,
    ]);
    await until(
      'kubelet to restart the killed replica and the Service to have it back',
      async () => {
        const p = (await webhookPods()).find((x) => x.metadata.name === victim.metadata.name);
        const s = p?.status.containerStatuses?.[0];
        return s?.ready && s.containerID !== victim.status.containerStatuses![0]!.containerID;
      },
      wait,
    );
    const count = creating.state.injected;
    await until('pods admitted after the restart', () => creating.state.injected >= count + 3, wait);
    const state = await creating.stop();
    t.diagnostic(
      `${state.injected} admitted, ${state.errors.length} errors: ${state.errors.slice(0, 2).join(' | ')}`,
    );
    assert.deepEqual(
      state.errors,
      [],
      `${state.errors.length} admission errors of ${state.injected + state.errors.length}`,
    );
  });

  test('helm rollback restores the values of the first revision', async (t) => {
    if (imagesMissing) return t.skip('no Chaperone images: run `make images`');
    const r = await helm!(['rollback', release, '1', '--namespace', system, '--wait', '--timeout', '5m']);
    assert.equal(r.code, 0, r.stderr);
    const config = await webhookConfig();
    assert.equal(config.logLevel, 'info');
    assert.equal(config.resources.sidecar.limits.memory, '1Gi');
    const history = await helm!(['history', release, '--namespace', system, '-o', 'json']);
    const revisions = JSON.parse(history.stdout) as {
      revision: number;
      status: string;
      description: string;
    }[];
    assert.equal(revisions.at(-1)?.status, 'deployed');
    assert.match(revisions.at(-1)?.description ?? '', /Rollback to 1/);
    // Admission works on the rolled-back release.
    const creating = createPodsUntilStopped();
    await until('pods admitted after the rollback', () => creating.state.injected >= 3, wait);
    assert.deepEqual((await creating.stop()).errors, []);
  });

  test('helm uninstall leaves no webhook configuration behind and keeps CRDs, policies and recordings', async (t) => {
    if (imagesMissing) return t.skip('no Chaperone images: run `make images`');
    const r = await helm!(['uninstall', release, '--namespace', system, '--wait', '--timeout', '3m']);
    assert.equal(r.code, 0, r.stderr);
    for (const kind of ['mutatingwebhookconfigurations', 'validatingwebhookconfigurations']) {
      assert.equal((await kubectl(['get', kind, '-o', 'name'])).trim(), '', kind);
    }
    // The cluster does not refuse pods in the opted-in namespace any more (nobody injects either).
    const core = kubeConfigFor(kube!).makeApiClient(CoreV1Api);
    const made = await core.createNamespacedPod({
      namespace: agents,
      dryRun: 'All',
      body: {
        metadata: { name: 'after-uninstall', labels: { ...AGENT_LABELS } },
        spec: { containers: [{ name: 'agent', image: node!.chaperoneImages.cli!, command: ['true'] }] },
      },
    });
    assert.equal(made.spec?.initContainers, undefined);
    const crds = await kubectl(['get', 'crds', '-o', 'name']);
    assert.match(crds, /sessionpolicies\.chaperone\.dev/);
    assert.match(crds, /sessionapprovals\.chaperone\.dev/);
    assert.match(await kubectl(['get', 'sessionpolicies', '-n', agents, '-o', 'name']), /orders-agents/);
    const cli = auditorCli(env!.minio, `s3://${bucket}/${prefix}`);
    const verify = await cli(['verify', '--all', '--namespace', agents, '--public-key', publicKeyFile]);
    assert.equal(verify.code, 0, verify.stdout + verify.stderr);
  });

  test('the safety net dropped nothing', async (t) => {
    if (imagesMissing) return t.skip('no Chaperone images: run `make images`');
    assert.equal(await safetyNetDrops(), 0);
  });
});

function merge(a: Record<string, unknown>, b: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...a };
  for (const [k, v] of Object.entries(b)) {
    const cur = out[k];
    out[k] =
      v && typeof v === 'object' && !Array.isArray(v) && cur && typeof cur === 'object' && !Array.isArray(cur)
        ? merge(cur as Record<string, unknown>, v as Record<string, unknown>)
        : v;
  }
  return out;
}
