// Two operator processes (operator/main.ts) share one Lease: only the leader reconciles; when the
// leader is killed the other takes over once the lease has expired; a leader stopped with SIGTERM
// releases the lease on its way out.
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { after, before, describe, it } from 'node:test';
import { CoordinationV1Api, CoreV1Api, CustomObjectsApi, type KubeConfig } from '@kubernetes/client-node';
import { testEnv } from '../test/env/index.ts';
import { kubeConfigFor } from '../test/env/kube.ts';
import {
  createNamespace,
  createPolicySecrets,
  installCrds,
  samplePolicy,
  uniqueName,
  waitFor,
} from './testing/kube.ts';

const env = await testEnv(['kube']);

const group = 'chaperone.dev';
const version = 'v1alpha1';
const plural = 'sessionpolicies';
const mainScript = new URL('./main.ts', import.meta.url).pathname;

interface Instance {
  identity: string;
  child: ChildProcess;
  url: Promise<string>;
  exit: Promise<number | null>;
  log: string[];
}

describe('leader election between two operator processes', { timeout: 180_000 }, () => {
  let kc: KubeConfig;
  let core: CoreV1Api;
  let custom: CustomObjectsApi;
  let leases: CoordinationV1Api;
  let ns: string;
  let systemNs: string;
  let dir: string;
  const leaseName = uniqueName('operator-lease');
  const instances = new Map<string, Instance>();

  function launch(identity: string, configFile: string): Instance {
    const child = spawn(
      process.execPath,
      [mainScript, '--config', configFile, '--kubeconfig', env.kube.kubeconfigPath],
      {
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    const log: string[] = [];
    let resolveUrl!: (url: string) => void;
    const url = new Promise<string>((resolve) => {
      resolveUrl = resolve;
    });
    createInterface({ input: child.stdout! }).on('line', (line) => {
      log.push(line);
      try {
        const entry = JSON.parse(line) as { msg?: string; url?: string };
        if (entry.msg === 'health server listening' && entry.url) resolveUrl(entry.url);
      } catch {
        // not a log line
      }
    });
    createInterface({ input: child.stderr! }).on('line', (line) => log.push(line));
    const exit = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    const instance = { identity, child, url, exit, log };
    instances.set(identity, instance);
    return instance;
  }

  const holder = async () =>
    (await leases.readNamespacedLease({ name: leaseName, namespace: systemNs })).spec;
  const metric = async (instance: Instance, pattern: RegExp) => {
    const text = await (await fetch(`${await instance.url}/metrics`)).text();
    const match = pattern.exec(text);
    return match ? Number(match[1]) : 0;
  };
  const reconciles = (instance: Instance) =>
    metric(
      instance,
      /chaperone_operator_reconcile_total\{controller="sessionpolicy",result="success"\} (\d+)/,
    );
  const isReady = async (name: string) => {
    const p = (await custom.getNamespacedCustomObject({ group, version, plural, namespace: ns, name })) as {
      status?: { conditions?: { type: string; status: string }[] };
    };
    return p.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True');
  };

  before(async () => {
    kc = kubeConfigFor(env.kube);
    core = kc.makeApiClient(CoreV1Api);
    custom = kc.makeApiClient(CustomObjectsApi);
    leases = kc.makeApiClient(CoordinationV1Api);
    await installCrds(kc);
    ns = await createNamespace(kc, 'leader');
    systemNs = await createNamespace(kc, 'chaperone-system');
    await createPolicySecrets(kc, ns);
    dir = await mkdtemp(join(tmpdir(), 'chaperone-leader-'));
    for (const identity of ['operator-a', 'operator-b']) {
      const file = join(dir, `${identity}.json`);
      await writeFile(
        file,
        JSON.stringify({
          identity,
          systemNamespace: systemNs,
          watchNamespace: ns,
          leaderElection: {
            leaseName,
            leaseDurationSeconds: 4,
            renewDeadlineSeconds: 3,
            retryPeriodSeconds: 1,
          },
          server: { host: '127.0.0.1', port: 0 },
          certificates: { mode: 'certManager' },
          storage: { bootstrap: false },
          logLevel: 'info',
        }),
      );
      launch(identity, file);
    }
  });

  after(async (t) => {
    for (const instance of instances.values()) {
      if (instance.child.exitCode === null && instance.child.signalCode === null)
        instance.child.kill('SIGKILL');
    }
    if (process.env.CHAPERONE_TEST_LOG_LEVEL) {
      for (const instance of instances.values())
        t.diagnostic(`${instance.identity}:\n${instance.log.join('\n')}`);
    }
    await rm(dir, { recursive: true, force: true });
    await core.deleteNamespace({ name: ns }).catch(() => undefined);
    await core.deleteNamespace({ name: systemNs }).catch(() => undefined);
  });

  let leader: Instance;
  let standby: Instance;

  it('elects one leader, and only the leader reconciles', async () => {
    const spec = await waitFor('a lease holder', async () => (await holder())?.holderIdentity, {
      timeoutMs: 30_000,
    });
    leader = instances.get(spec)!;
    standby = [...instances.values()].find((i) => i !== leader)!;

    await custom.createNamespacedCustomObject({
      group,
      version,
      plural,
      namespace: ns,
      body: samplePolicy('first', ns),
    });
    await waitFor('first Ready', () => isReady('first'));
    assert.ok((await reconciles(leader)) > 0);
    assert.equal(await reconciles(standby), 0);
    assert.equal(await metric(leader, /^chaperone_operator_leader (\d+)/m), 1);
    assert.equal(await metric(standby, /^chaperone_operator_leader (\d+)/m), 0);
    assert.equal((await fetch(`${await standby.url}/readyz`)).status, 200, 'a standby is ready');
  });

  it('lets the standby take over after the killed leader’s lease expires', async () => {
    const before = await holder();
    leader.child.kill('SIGKILL');
    await leader.exit;
    const after = await waitFor(
      'standby holds the lease',
      async () => {
        const spec = await holder();
        return spec?.holderIdentity === standby.identity ? spec : undefined;
      },
      { timeoutMs: 30_000 },
    );
    assert.equal(after.leaseTransitions, (before?.leaseTransitions ?? 0) + 1);
    // Not before the lease expired: the last renewal was at or after the one read before the kill.
    // Each side stamps its time before its read of the lease: allow that round trip (500 ms of
    // the 4 s lease), far less than a takeover that ignored the lease would show.
    const ms = (t: unknown) => new Date(t as string).getTime();
    const expiredAt = ms(before?.renewTime) + (before?.leaseDurationSeconds ?? 0) * 1000;
    assert.ok(
      ms(after.acquireTime) >= expiredAt - 500,
      `acquired at ${new Date(ms(after.acquireTime)).toISOString()}, the lease ran until ${new Date(expiredAt).toISOString()}`,
    );

    await custom.createNamespacedCustomObject({
      group,
      version,
      plural,
      namespace: ns,
      body: samplePolicy('second', ns),
    });
    await waitFor('second Ready under the new leader', () => isReady('second'));
    assert.ok((await reconciles(standby)) > 0);
  });

  it('releases the lease on SIGTERM', async () => {
    standby.child.kill('SIGTERM');
    assert.equal(await standby.exit, 0);
    const spec = await holder();
    assert.equal(spec?.holderIdentity ?? '', '');
    assert.equal(spec?.leaseDurationSeconds, 1);
  });
});
