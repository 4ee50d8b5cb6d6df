// PostgreSQL gateway benchmark: pgbench (select-only and TPC-B-like, 16 clients; select-only with one
// client for latency) straight to the database, through pgbouncer (session pooling), through a
// Node.js relay that only copies bytes (bench/node-relay.ts: the floor of any Node proxy), and
// through the chaperone sidecar recording to MinIO, all in one run on this machine. Prints TPS
// ratios, the proxies' CPU per transaction and added latency.
//
//   node bench/postgres.bench.ts            (BENCH_SECONDS=20 per run, BENCH_CLIENTS=16, BENCH_SCALE=10)
//   BENCH_MODES=select-only,tpcb,latency BENCH_PATHS=direct,pgbouncer,node-relay,sidecar select parts
//   BENCH_DURABILITY=strict|batched sets the sidecar's recording.durability (default: strict)
//   BENCH_SIDECAR_VARIANTS='--max-semi-space-size=1 --optimize-for-size|--max-semi-space-size=4'
//     runs one more sidecar per '|'-separated set of Node flags (the image's env), interleaved with
//     the others in every round, and prints each one's CPU per transaction and peak RSS (VmHWM)
//   BENCH_SIDECAR_BASELINE=/path/to/other/checkout runs one more sidecar, "sidecar@baseline", from
//     that tree's sidecar/main.ts (same config and flags), interleaved like a variant: an A/B of
//     code changes in one run (e.g. `git archive <commit> | tar -x -C /tmp/base`, node_modules linked)
//   BENCH_ROUNDS=3 repeats every mode's runs (interleaved, so the machine's load falls on all paths;
//     the first table shows the last round, the last table every round)
//
// The sidecar runs as its own process (node sidecar/main.ts) with tokenRequired: true and the test
// environment's OpenID provider as its trusted issuer; pgbench presents a JWT access token of that
// provider through PGPASSWORD, verified (signature, issuer, audience, expiry) on every connection.

import { type ChildProcess, spawn } from 'node:child_process';
import { chown, mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { generateSigningKey } from '../recording/index.ts';
import { SIDECAR_IMAGE_ENV, SIDECAR_NODE_FLAGS } from '../sidecar/index.ts';
import { startEnv } from '../test/env/index.ts';
import { freePort, run, spawnOwned, tcpAccepts, waitUntil } from '../test/env/net.ts';
import { oidcToken } from '../test/env/oidc.ts';
import { createRole, psql } from '../test/env/postgres.ts';
import { unprivilegedUser } from '../test/env/postgres-user.ts';
import { cpuSeconds } from './testing/process-stats.ts';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 20);
const CLIENTS = Number(process.env.BENCH_CLIENTS ?? 16);
const SCALE = Number(process.env.BENCH_SCALE ?? 10);
const WARMUP_SECONDS = 3;
const CPU_PROFILE = process.env.BENCH_CPU_PROF === '1';
/** recording.durability of the sidecar: strict (the default with failClosed) or batched. */
const DURABILITY = process.env.BENCH_DURABILITY as 'strict' | 'batched' | undefined;

/**
 * select-only and tpcb: throughput with 16 clients on a saturated machine. latency: one client
 * running select-only, so nothing queues: what one agent notices per statement.
 */
type Mode = 'select-only' | 'tpcb' | 'latency';

interface Endpoint {
  /** direct, pgbouncer, node-relay, sidecar, or `sidecar <flags>` for BENCH_SIDECAR_VARIANTS. */
  name: string;
  port: number;
  user: string;
  password: string;
  /** The proxy process whose CPU time is measured. */
  pid?: number;
}

interface Result {
  tps: number;
  /** CPU time of the proxy process (sidecar or pgbouncer) per transaction, in microseconds. */
  proxyCpuUsPerTx?: number;
  /** The same, split into user and kernel time. */
  proxyUserUsPerTx?: number;
  proxySysUsPerTx?: number;
  p50Ms: number;
  p90Ms: number;
  p99Ms: number;
  meanMs: number;
  statements: { sql: string; avgMs: number }[];
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

async function pgbench(
  binDir: string,
  ep: Endpoint,
  mode: Mode,
  seconds: number,
  logDir?: string,
): Promise<Result> {
  const clients = mode === 'latency' ? 1 : CLIENTS;
  const args = [
    '-h',
    '127.0.0.1',
    '-p',
    String(ep.port),
    '-U',
    ep.user,
    '-c',
    String(clients),
    '-j',
    String(Math.min(2, clients)),
    '-T',
    String(seconds),
    '-r',
    '-n',
  ];
  if (mode !== 'tpcb') args.push('-S');
  if (logDir) args.push('--log', `--log-prefix=${join(logDir, 'tx')}`);
  args.push('bench');
  const out = await run(join(binDir, 'pgbench'), args, {
    env: { PATH: process.env.PATH, PGPASSWORD: ep.password },
    cwd: logDir,
  });
  const tps = Number(/tps = ([\d.]+) \(without initial connection time\)/.exec(out)?.[1]);
  const statements: Result['statements'] = [];
  let inLatencies = false;
  for (const line of out.split('\n')) {
    if (/statement latencies in milliseconds/.test(line)) inLatencies = true;
    else if (inLatencies) {
      const m = /^\s+([\d.]+)\s+(?:\d+\s+)?(.+)$/.exec(line);
      if (m && !m[2]!.startsWith('\\')) statements.push({ avgMs: Number(m[1]), sql: m[2]!.trim() });
    }
  }
  let p50Ms = Number.NaN;
  let p90Ms = Number.NaN;
  let p99Ms = Number.NaN;
  let meanMs = Number.NaN;
  if (logDir) {
    const latencies: number[] = [];
    for (const f of await readdir(logDir)) {
      if (!f.startsWith('tx')) continue;
      for (const line of (await readFile(join(logDir, f), 'utf8')).split('\n')) {
        const parts = line.split(' ');
        if (parts.length >= 3) latencies.push(Number(parts[2]) / 1000);
      }
      await rm(join(logDir, f));
    }
    latencies.sort((a, b) => a - b);
    p50Ms = percentile(latencies, 50);
    p90Ms = percentile(latencies, 90);
    p99Ms = percentile(latencies, 99);
    meanMs = latencies.reduce((a, b) => a + b, 0) / latencies.length;
  }
  if (!Number.isFinite(tps)) throw new Error(`pgbench output without tps:\n${out}`);
  return { tps, p50Ms, p90Ms, p99Ms, meanMs, statements };
}

async function startPgbouncer(
  dir: string,
  pgPort: number,
  user: string,
  password: string,
): Promise<{ port: number; pid: number; stop(): Promise<void> }> {
  const owner = await unprivilegedUser(); // pgbouncer refuses to run as root
  const port = await freePort();
  await mkdir(dir, { recursive: true });
  const ini = [
    '[databases]',
    `bench = host=127.0.0.1 port=${pgPort} dbname=bench`,
    '[pgbouncer]',
    'listen_addr = 127.0.0.1',
    `listen_port = ${port}`,
    `unix_socket_dir = ${dir}`,
    'auth_type = scram-sha-256',
    `auth_file = ${join(dir, 'userlist.txt')}`,
    'pool_mode = session',
    `default_pool_size = ${CLIENTS + 4}`,
    'max_client_conn = 200',
    `logfile = ${join(dir, 'pgbouncer.log')}`,
    'log_connections = 0',
    'log_disconnections = 0',
    '',
  ].join('\n');
  await writeFile(join(dir, 'pgbouncer.ini'), ini);
  await writeFile(join(dir, 'userlist.txt'), `"${user}" "${password}"\n`, { mode: 0o600 });
  if (owner)
    for (const f of ['', 'pgbouncer.ini', 'userlist.txt']) await chown(join(dir, f), owner.uid, owner.gid);
  const proc = spawnOwned('/usr/sbin/pgbouncer', [join(dir, 'pgbouncer.ini')], {
    name: 'pgbouncer',
    logFile: join(dir, 'stdout.log'),
    uid: owner?.uid,
    gid: owner?.gid,
    stopSignal: 'SIGINT',
  });
  await waitUntil('pgbouncer', () => tcpAccepts('127.0.0.1', port), { process: proc });
  return { port, pid: proc.pid, stop: () => proc.stop() };
}

/** bench/node-relay.ts: a Node.js proxy that only copies bytes, the floor for any Node proxy. */
async function startNodeRelay(
  dir: string,
  pgPort: number,
): Promise<{ port: number; pid: number; stop(): Promise<void> }> {
  const port = await freePort();
  const proc = spawnOwned(
    process.execPath,
    [new URL('./node-relay.ts', import.meta.url).pathname, String(port), '127.0.0.1', String(pgPort)],
    { name: 'node-relay', logFile: join(dir, 'node-relay.log') },
  );
  await waitUntil('node-relay', () => tcpAccepts('127.0.0.1', port), { process: proc });
  return { port, pid: proc.pid, stop: () => proc.stop() };
}

async function startSidecar(
  dir: string,
  config: Record<string, unknown>,
  adminPort: number,
  variantFlags?: string[],
  tree = new URL('..', import.meta.url).pathname,
): Promise<{ child: ChildProcess; stop(): Promise<void> }> {
  const configPath = join(dir, 'sidecar.yaml');
  await writeFile(configPath, stringify(config));
  // As the sidecar image runs it (sidecar/entrypoint.ts); BENCH_SIDECAR_PLAIN=1 runs plain `node`,
  // BENCH_SIDECAR_NODE_FLAGS (space-separated) other Node flags with the image's env.
  const plain = variantFlags === undefined && process.env.BENCH_SIDECAR_PLAIN === '1';
  const flags =
    variantFlags ?? process.env.BENCH_SIDECAR_NODE_FLAGS?.split(' ').filter(Boolean) ?? SIDECAR_NODE_FLAGS;
  const args: string[] = plain ? [] : [...flags];
  if (CPU_PROFILE) args.push('--cpu-prof', `--cpu-prof-dir=${join(process.cwd(), 'bench', 'out')}`);
  args.push(join(tree, 'sidecar', 'main.ts'), '--config', configPath);
  const child = spawn(process.execPath, args, {
    env: {
      ...(plain ? {} : SIDECAR_IMAGE_ENV),
      ...process.env,
      CHAPERONE_ADMIN_HOST: '127.0.0.1',
      CHAPERONE_LOG_LEVEL: 'warn',
    },
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  await waitUntil(
    'sidecar',
    async () => (await fetch(`http://127.0.0.1:${adminPort}/readyz`).catch(() => undefined))?.ok === true,
  );
  return {
    child,
    async stop() {
      child.kill('SIGTERM');
      await exited;
    },
  };
}

/** Peak resident set size of a process in MiB (VmHWM, Linux /proc). */
async function peakRssMiB(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  return Number(/^VmHWM:\s+(\d+) kB/m.exec(status)?.[1] ?? Number.NaN) / 1024;
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2
    ? (s[(s.length - 1) / 2] as number)
    : ((s[s.length / 2 - 1] as number) + (s[s.length / 2] as number)) / 2;
};

const fmt = (n: number, d = 2) => (Number.isFinite(n) ? n.toFixed(d) : 'n/a');

async function main(): Promise<void> {
  const started = Date.now();
  const env = await startEnv(['postgres', 'minio', 'oidc']);
  const { postgres: pg, minio, oidc } = env.info as Required<typeof env.info>;
  const dir = join(env.dir, 'bench');
  await mkdir(dir, { recursive: true });
  const stops: (() => Promise<void>)[] = [];
  try {
    const user = 'bench_user';
    const password = 'bench-password-not-shown-to-agents';
    await createRole(pg, { name: user, password });
    await psql(pg, `CREATE DATABASE bench OWNER ${user}`);
    process.stderr.write(`[bench] pgbench -i -s ${SCALE}\n`);
    await run(
      join(pg.binDir, 'pgbench'),
      ['-i', '-q', '-s', String(SCALE), '-h', '127.0.0.1', '-p', String(pg.port), '-U', user, 'bench'],
      {
        env: { PATH: process.env.PATH, PGPASSWORD: password },
      },
    );

    const bouncer = await startPgbouncer(join(dir, 'pgbouncer'), pg.port, user, password);
    stops.push(bouncer.stop);
    const relay = await startNodeRelay(dir, pg.port);
    stops.push(relay.stop);

    const creds = join(dir, 'creds');
    await mkdir(creds, { recursive: true });
    await writeFile(join(creds, 'username'), user, { mode: 0o600 });
    await writeFile(join(creds, 'password'), password, { mode: 0o600 });
    const storeCreds = join(dir, 'store-creds');
    await mkdir(storeCreds, { recursive: true });
    await writeFile(join(storeCreds, 'accessKeyId'), minio.accessKeyId);
    await writeFile(join(storeCreds, 'secretAccessKey'), minio.secretAccessKey);
    const key = generateSigningKey();
    await writeFile(join(dir, 'signing.pem'), key.privateKeyPem, { mode: 0o600 });
    const sidecarConfig = (prefix: string, listenPort: number, adminPort: number, spoolDir: string) => ({
      apiVersion: 'chaperone.dev/sidecar-v1',
      policy: { name: 'bench', generation: 1 },
      adminPort,
      targets: [
        {
          name: 'bench-db',
          protocol: 'postgres',
          upstream: { host: '127.0.0.1', port: pg.port },
          listenPort,
          credentialsDir: creds,
        },
      ],
      identity: { tokenRequired: true, issuers: [{ issuer: oidc.issuer, audiences: [oidc.audience] }] },
      guardrails: [
        { name: 'no-drop', match: { sqlClasses: ['drop'] }, action: 'block' },
        { name: 'no-mass-delete', match: { sqlClasses: ['deleteWithoutWhere'] }, action: 'block' },
      ],
      recording: {
        store: {
          url: `s3://${minio.bucket}/${prefix}`,
          endpoint: minio.endpoint,
          region: minio.region,
          credentialsDir: storeCreds,
        },
        signingKeyFile: join(dir, 'signing.pem'),
        keyId: key.keyId,
        spoolDir,
        ...(DURABILITY ? { durability: DURABILITY } : {}),
      },
    });
    const sidecarPort = await freePort();
    const adminPort = await freePort();
    const sidecar = await startSidecar(
      dir,
      sidecarConfig('bench', sidecarPort, adminPort, join(dir, 'spool')),
      adminPort,
    );
    stops.push(sidecar.stop);
    const variants = (process.env.BENCH_SIDECAR_VARIANTS ?? '')
      .split('|')
      .map((v) => v.split(' ').filter(Boolean))
      .filter((v) => v.length > 0);
    const variantSidecars: { name: string; port: number; pid?: number }[] = [];
    for (const [i, flags] of variants.entries()) {
      const vdir = join(dir, `variant-${i}`);
      await mkdir(vdir, { recursive: true });
      const [port, admin] = [await freePort(), await freePort()];
      const v = await startSidecar(
        vdir,
        sidecarConfig(`bench-${i}`, port, admin, join(vdir, 'spool')),
        admin,
        flags,
      );
      stops.push(v.stop);
      variantSidecars.push({ name: `sidecar ${flags.join(' ')}`, port, pid: v.child.pid });
    }

    const baselineTree = process.env.BENCH_SIDECAR_BASELINE;
    if (baselineTree) {
      const bdir = join(dir, 'baseline');
      await mkdir(bdir, { recursive: true });
      const [port, admin] = [await freePort(), await freePort()];
      const b = await startSidecar(
        bdir,
        sidecarConfig('bench-baseline', port, admin, join(bdir, 'spool')),
        admin,
        undefined,
        baselineTree,
      );
      stops.push(b.stop);
      variantSidecars.push({ name: 'sidecar@baseline', port, pid: b.child.pid });
    }

    // Outlives every run of the bench (each pgbench run connects anew, presenting it again).
    const agentToken = await oidcToken(oidc, {
      clientId: 'bench-agent',
      ttlSeconds: 3600 + 6 * (SECONDS + WARMUP_SECONDS),
    });
    const endpoints: Endpoint[] = [
      { name: 'direct', port: pg.port, user, password },
      { name: 'pgbouncer', port: bouncer.port, user, password, pid: bouncer.pid },
      { name: 'node-relay', port: relay.port, user, password, pid: relay.pid },
      { name: 'sidecar', port: sidecarPort, user: 'agent', password: agentToken, pid: sidecar.child.pid },
      ...variantSidecars.map((v) => ({ ...v, user: 'agent', password: agentToken })),
    ];
    const rounds = Number(process.env.BENCH_ROUNDS ?? 1);
    /** Every round's result per mode and path, for the variants' table. */
    const all: Record<string, Record<string, Result[]>> = {};
    const results: Record<string, Record<string, Result>> = {};
    const modes = (process.env.BENCH_MODES ?? 'select-only,tpcb,latency').split(',') as Mode[];
    for (let round = 0; round < rounds; round++)
      for (const mode of modes) {
        results[mode] = {};
        all[mode] ??= {};
        // Each round starts one path later, so no path always runs first (or right after another).
        const chosen = endpoints.filter(
          (ep) => !process.env.BENCH_PATHS || process.env.BENCH_PATHS.split(',').includes(ep.name),
        );
        for (const ep of chosen.map((_, i) => chosen[(i + round) % chosen.length] as Endpoint)) {
          await pgbench(pg.binDir, ep, mode, WARMUP_SECONDS);
          const logDir = join(dir, `log-${mode}-${ep.name}`);
          await mkdir(logDir, { recursive: true });
          process.stderr.write(`[bench] ${mode} via ${ep.name}: ${SECONDS} s\n`);
          const cpuBefore = ep.pid ? await cpuSeconds(ep.pid) : undefined;
          const r = await pgbench(pg.binDir, ep, mode, SECONDS, logDir);
          if (ep.pid && cpuBefore) {
            const cpuAfter = await cpuSeconds(ep.pid);
            const perTx = (s: number) => (s / (r.tps * SECONDS)) * 1e6;
            r.proxyUserUsPerTx = perTx(cpuAfter.user - cpuBefore.user);
            r.proxySysUsPerTx = perTx(cpuAfter.sys - cpuBefore.sys);
            r.proxyCpuUsPerTx = r.proxyUserUsPerTx + r.proxySysUsPerTx;
          }
          results[mode][ep.name] = r;
          const byEp = all[mode] as Record<string, Result[]>;
          byEp[ep.name] = [...(byEp[ep.name] ?? []), r];
        }
      }
    const lines: string[] = [];
    lines.push(
      `pgbench, ${CLIENTS} clients, -j 2, scale ${SCALE}, ${SECONDS} s per run, ${new Date().toISOString().slice(0, 10)}`,
    );
    for (const [mode, byEp] of Object.entries(results)) {
      const d = byEp.direct;
      const b = byEp.pgbouncer;
      const s = byEp.sidecar;
      const n = byEp['node-relay'];
      const perTx = mode === 'tpcb' ? s?.statements.length || 1 : 1;
      lines.push(`\n${mode}${mode === 'latency' ? ' (1 client, select-only)' : ''}:`);
      lines.push('| path | TPS | tx p50 ms | tx p99 ms | proxy CPU us/tx | user / sys us/tx |');
      lines.push('| --- | ---: | ---: | ---: | ---: | ---: |');
      for (const [name, r] of Object.entries(byEp))
        lines.push(
          `| ${name} | ${fmt(r.tps, 0)} | ${fmt(r.p50Ms, 3)} | ${fmt(r.p99Ms, 3)} | ${r.proxyCpuUsPerTx === undefined ? '-' : fmt(r.proxyCpuUsPerTx, 0)} | ${r.proxyUserUsPerTx === undefined ? '-' : `${fmt(r.proxyUserUsPerTx, 0)} / ${fmt(r.proxySysUsPerTx ?? Number.NaN, 0)}`} |`,
        );
      if (n && d)
        lines.push(
          `node-relay/direct TPS: ${fmt(n.tps / d.tps)} (the floor of a Node.js proxy that only copies bytes)`,
        );
      if (!s) continue;
      lines.push(
        `sidecar/direct TPS: ${fmt(s.tps / (d?.tps ?? Number.NaN))}   sidecar/pgbouncer TPS: ${fmt(s.tps / (b?.tps ?? Number.NaN))}   sidecar/node-relay TPS: ${fmt(s.tps / (n?.tps ?? Number.NaN))}`,
      );
      if (!d) continue;
      lines.push(
        `added latency per statement vs direct: p50 ${fmt(((s.p50Ms - d.p50Ms) / perTx) * 1000, 0)} us, p99 ${fmt(((s.p99Ms - d.p99Ms) / perTx) * 1000, 0)} us (${perTx} statement(s) per transaction)`,
      );
      const avgAdded = s.statements.map((st, i) => (st.avgMs - (d.statements[i]?.avgMs ?? 0)) * 1000);
      lines.push(
        `added mean latency per statement (pgbench -r): ${avgAdded.map((n) => `${fmt(n, 0)} us`).join(', ')}`,
      );
    }
    if (variantSidecars.length > 0 || rounds > 1) {
      lines.push(`\nevery round (${rounds}), sidecar CPU us/tx (median), peak RSS MiB (VmHWM at the end):`);
      lines.push(
        '| mode | path | TPS per round | tx p50 / p90 / p99 (mean) ms per round | proxy CPU us/tx per round | median CPU us/tx | peak RSS MiB |',
      );
      lines.push('| --- | --- | --- | --- | --- | ---: | ---: |');
      for (const [mode, byEp] of Object.entries(all))
        for (const ep of endpoints) {
          const rs = byEp[ep.name];
          if (!rs) continue;
          const cpu = rs.map((r) => r.proxyCpuUsPerTx ?? Number.NaN);
          const rss = ep.pid ? await peakRssMiB(ep.pid).catch(() => Number.NaN) : Number.NaN;
          lines.push(
            `| ${mode} | ${ep.name} | ${rs.map((r) => fmt(r.tps, 0)).join(', ')} | ${rs.map((r) => `${fmt(r.p50Ms, 3)} / ${fmt(r.p90Ms, 3)} / ${fmt(r.p99Ms, 3)} (${fmt(r.meanMs, 3)})`).join(', ')} | ${cpu.map((c) => fmt(c, 0)).join(', ')} | ${fmt(median(cpu), 0)} | ${fmt(rss, 0)} |`,
          );
        }
    }
    lines.push(`\ntotal bench time ${Math.round((Date.now() - started) / 1000)} s`);
    process.stdout.write(`${lines.join('\n')}\n`);
    const json = join(process.cwd(), 'bench', 'out');
    await mkdir(json, { recursive: true });
    await writeFile(
      join(json, 'postgres.json'),
      `${JSON.stringify({ clients: CLIENTS, scale: SCALE, seconds: SECONDS, results }, null, 2)}\n`,
    );
  } finally {
    for (const stop of stops.reverse()) await stop().catch(() => undefined);
    await env.stop();
  }
}

await main();
