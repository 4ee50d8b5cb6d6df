// HTTP target throughput and Kubernetes target latency, each under a minute:
// - small GETs (a 200-byte JSON) with 16 concurrent keep-alive clients for 8 s: direct to the
//   HTTPS upstream, through a bare Node reverse proxy (node:http + an undici Pool, no identity, no
//   recording: what any Node proxy costs on this machine), and through the sidecar (recording every
//   exchange to a file:// store, production segment size). The load client and the upstream run in
//   worker threads, the relay and the sidecar on the main thread.
// - `kubectl get pods` 10 times direct vs through the Kubernetes target (real apiserver).
//   node bench/http.bench.ts [--seconds 8] [--no-kube] [--durability strict,batched] [--rounds 1]
// BENCH_CPU_PROF=1 writes a V8 CPU profile of the sidecar's thread (the main one) to bench/out/.
import { spawn } from 'node:child_process';
import { mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { createServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import { Pool } from 'undici';

if (!isMainThread) {
  const job = workerData as
    | { kind: 'upstream'; cert: string; key: string }
    | { kind: 'load'; url: string; ca?: string; seconds: number };
  if (job.kind === 'upstream') {
    const body = JSON.stringify({
      items: Array.from({ length: 5 }, (_, i) => ({ id: i, name: `item-${i}` })),
    });
    const server = createServer({ cert: job.cert, key: job.key }, (_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
      res.end(body);
    });
    server.listen(0, '127.0.0.1', () => parentPort!.postMessage((server.address() as AddressInfo).port));
  } else {
    const url = new URL(job.url);
    const pool = new Pool(url.origin, { connections: 16, ...(job.ca ? { connect: { ca: job.ca } } : {}) });
    const headers = { authorization: `Bearer ${process.env.BENCH_TOKEN ?? ''}` };
    let done = 0;
    const deadline = Date.now() + job.seconds * 1000;
    await Promise.all(
      Array.from({ length: 16 }, async () => {
        while (Date.now() < deadline) {
          const r = await pool.request({ path: url.pathname, method: 'GET', headers });
          await r.body.text();
          if (r.statusCode !== 200) throw new Error(`status ${r.statusCode}`);
          done++;
        }
      }),
    );
    await pool.close();
    parentPort!.postMessage(done / job.seconds);
  }
} else {
  const { values } = parseArgs({
    options: {
      seconds: { type: 'string', default: '8' },
      'no-kube': { type: 'boolean', default: false },
      durability: { type: 'string', default: 'strict,batched' },
      rounds: { type: 'string', default: '1' },
    },
  });
  const seconds = Number(values.seconds);
  const { generateControlPlanePki } = await import('../test/env/kube-certs.ts');
  const { startHttpHarness } = await import('../sidecar/http/testing/harness.ts');
  const pki = await generateControlPlanePki();
  const upstream = new Worker(new URL(import.meta.url), {
    workerData: { kind: 'upstream', cert: pki.apiserver.certPem, key: pki.apiserver.keyPem },
  });
  const port = await new Promise<number>((r) => upstream.once('message', r));
  const dir = await mkdtemp(join(tmpdir(), 'chaperone-http-bench-'));
  await writeFile(join(dir, 'ca.crt'), pki.ca.certPem);
  const harness = (durability: 'strict' | 'batched') =>
    startHttpHarness({
      target: {
        protocol: 'http',
        upstream: { host: '127.0.0.1', port },
        tls: { caFile: join(dir, 'ca.crt') },
        http: { credential: 'bearer' },
      },
      durability,
      segmentSeconds: 10,
    });
  // The proxy's cost per request: CPU time of this thread (where the relay or the sidecar runs),
  // which other work on the machine moves much less than the request rate.
  const runs: Record<string, { rate: number; cpuUs: number }[]> = {};
  const load = (name: string, url: string, token: string, ca?: string) =>
    new Promise<number>((resolve, reject) => {
      const before = process.threadCpuUsage();
      const w = new Worker(new URL(import.meta.url), {
        workerData: { kind: 'load', url, ca, seconds },
        env: { ...process.env, BENCH_TOKEN: token },
      });
      w.once('message', (rate: number) => {
        const used = process.threadCpuUsage(before);
        runs[name] = [...(runs[name] ?? []), { rate, cpuUs: (used.user + used.system) / (rate * seconds) }];
        resolve(rate);
      });
      w.once('error', reject);
    });
  const modes = values.durability.split(',') as ('strict' | 'batched')[];
  // Rounds of every path back to back: the ratios compare runs made under the same load.
  for (let round = 0; round < Number(values.rounds); round++) {
    await load('direct', `https://127.0.0.1:${port}/items`, '', pki.ca.certPem);
    const relay = await startRelay(port, pki.ca.certPem);
    await load('relay', `${relay.base}/items`, '');
    await relay.close();
    for (const durability of modes) {
      const h = await harness(durability);
      // The profile covers the sidecar's load runs of the first round only.
      const profiler = process.env.BENCH_CPU_PROF && round === 0 ? await startProfiler() : undefined;
      await load(durability, `${h.base}/items`, h.token);
      if (profiler) process.stdout.write(`cpu profile (${durability}): ${await profiler()}\n`);
      await h.close();
    }
  }
  const median = (xs: number[]) => xs.sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  const rate = (name: string) => median(runs[name]!.map((r) => r.rate));
  const cpu = (name: string) => median(runs[name]!.map((r) => r.cpuUs));
  const direct = rate('direct');
  const relayed = rate('relay');
  const out = [
    `machine: ${cpus().length} cores, load ${loadavg()[0]!.toFixed(1)}; ${values.rounds} rounds, medians`,
    `small GET, 16 keep-alive clients, ${seconds} s: direct ${direct.toFixed(0)} req/s; bare relay ${relayed.toFixed(0)} req/s (${(relayed / direct).toFixed(2)}x); via sidecar, ${modes
      .map((m) => `durability ${m} ${rate(m).toFixed(0)} req/s (${(rate(m) / direct).toFixed(2)}x)`)
      .join(', ')}`,
    `sidecar / bare relay: ${modes.map((m) => `${m} ${(rate(m) / relayed).toFixed(2)}`).join(', ')}`,
    `proxy thread CPU per request (user+sys): relay ${cpu('relay').toFixed(0)} µs, ${modes
      .map((m) => `${m} ${cpu(m).toFixed(0)} µs`)
      .join(', ')}`,
    `each round (req/s): ${Object.entries(runs)
      .map(([k, v]) => `${k} ${v.map((r) => r.rate.toFixed(0)).join('/')}`)
      .join(', ')}`,
  ];
  process.stdout.write(`${out.join('\n')}\n`);
  await upstream.terminate();
  if (!values['no-kube']) {
    const { testEnv } = await import('../test/env/index.ts');
    const { kube } = await testEnv(['kube']);
    const times = async (kubeconfig: string) => {
      const ms: number[] = [];
      for (let i = 0; i < 10; i++) {
        const t = performance.now();
        const code = await new Promise<number | null>((r) =>
          spawn(kube.kubectl, ['get', 'pods', '-A'], {
            env: { PATH: process.env.PATH, HOME: dir, KUBECONFIG: kubeconfig },
            stdio: 'ignore',
          }).on('close', r),
        );
        if (code !== 0) throw new Error(`kubectl exit ${code}`);
        ms.push(performance.now() - t);
      }
      ms.sort((a, b) => a - b);
      return ms[Math.floor(ms.length / 2)]!;
    };
    const directMs = await times(kube.kubeconfigPath);
    // Through the sidecar: upstream a service account token allowed to list pods.
    const { kubeConfigFor } = await import('../test/env/kube.ts');
    const { CoreV1Api, RbacAuthorizationV1Api } = await import('@kubernetes/client-node');
    const kc = kubeConfigFor(kube);
    const core = kc.makeApiClient(CoreV1Api);
    const ns = `http-bench-${process.pid}`;
    await core.createNamespace({ body: { metadata: { name: ns } } });
    await core.createNamespacedServiceAccount({ namespace: ns, body: { metadata: { name: 'up' } } });
    await core.createNamespacedServiceAccount({ namespace: ns, body: { metadata: { name: 'agent' } } });
    await kc.makeApiClient(RbacAuthorizationV1Api).createClusterRoleBinding({
      body: {
        metadata: { name: ns },
        roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'view' },
        subjects: [{ kind: 'ServiceAccount', name: 'up', namespace: ns }],
      },
    });
    const tok = async (name: string, aud?: string) =>
      (
        await core.createNamespacedServiceAccountToken({
          name,
          namespace: ns,
          body: { spec: { ...(aud ? { audiences: [aud] } : {}) } },
        })
      ).status?.token ?? '';
    await writeFile(join(dir, 'agent-token'), await tok('agent', 'chaperone'));
    const url = new URL(kube.server);
    await writeFile(join(dir, 'kca.crt'), kube.caPem);
    const k = await startHttpHarness({
      target: {
        name: 'kube',
        protocol: 'kubernetes',
        upstream: { host: url.hostname, port: Number(url.port) },
        tls: { caFile: join(dir, 'kca.crt') },
        agentKubeconfig: { file: join(dir, 'kubeconfig'), tokenFile: join(dir, 'agent-token') },
      },
      credentials: { token: await tok('up') },
      issuers: [
        {
          issuer: kube.serviceAccountIssuer,
          audiences: ['chaperone'],
          kubernetes: true,
          caFile: join(dir, 'kca.crt'),
        },
      ],
      pod: { serviceAccount: 'agent', namespace: ns },
    });
    while (!(await stat(join(dir, 'kubeconfig')).catch(() => undefined)))
      await new Promise((r) => setTimeout(r, 20));
    const viaMs = await times(join(dir, 'kubeconfig'));
    process.stdout.write(
      `kubectl get pods -A, median of 10: direct ${directMs.toFixed(0)} ms, via sidecar ${viaMs.toFixed(0)} ms (+${(viaMs - directMs).toFixed(0)} ms)\n`,
    );
    await k.close();
    await core.deleteNamespace({ name: ns }).catch(() => undefined);
  }
  await rm(dir, { recursive: true, force: true });
  process.exit(0);
}

/** The bare relay: node:http in front of an undici Pool to the upstream, bodies piped both ways. */
async function startRelay(port: number, ca: string): Promise<{ base: string; close(): Promise<void> }> {
  const { createServer: createHttpServer } = await import('node:http');
  const { pipeline } = await import('node:stream/promises');
  const pool = new Pool(`https://127.0.0.1:${port}`, { connect: { ca }, connections: 64 });
  const server = createHttpServer({ keepAliveTimeout: 65_000 }, (req, res) => {
    const { host: _h, connection: _c, ...headers } = req.headers;
    pool
      .request({
        method: req.method as 'GET',
        path: req.url ?? '/',
        headers,
        body: req.method === 'GET' ? null : req,
      })
      .then(async (r) => {
        res.writeHead(r.statusCode, r.headers as Record<string, string>);
        await pipeline(r.body, res);
      })
      .catch(() => res.destroy());
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    base: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: async () => {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
      await pool.close();
    },
  };
}

/** Starts the inspector's CPU profiler on this thread; the returned function stops it and writes the file. */
async function startProfiler(): Promise<() => Promise<string>> {
  const { Session } = await import('node:inspector/promises');
  const { mkdir } = await import('node:fs/promises');
  const session = new Session();
  session.connect();
  await session.post('Profiler.enable');
  await session.post('Profiler.setSamplingInterval', { interval: 500 });
  await session.post('Profiler.start');
  return async () => {
    const { profile } = await session.post('Profiler.stop');
    const out = join(import.meta.dirname, 'out');
    await mkdir(out, { recursive: true });
    const file = join(out, `http-${Date.now()}.cpuprofile`);
    await writeFile(file, JSON.stringify(profile));
    session.disconnect();
    return file;
  };
}
