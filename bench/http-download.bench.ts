// A large download through the HTTP target (default 1 GiB): curl → sidecar (recording the exchange,
// durability strict) → a real HTTPS server in this process, with the process's RSS sampled every
// 100 ms. Prints RSS first / max / last and the rate; checks the recorded length and SHA-256 of the
// whole body against what the upstream sent. No pass/fail on time: it reports.
//   node bench/http-download.bench.ts [--mib 1024]
import { createHash } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { startHttpHarness } from '../sidecar/http/testing/harness.ts';
import { startUpstreamServer } from '../sidecar/http/testing/upstream-server.ts';
import { runProcess } from '../test/testing/run-process.ts';

const { values } = parseArgs({ options: { mib: { type: 'string', default: '1024' } } });
const bytes = Number(values.mib) * 1024 * 1024;
const mib = (n: number) => (n / 1024 / 1024).toFixed(0);

const up = await startUpstreamServer();
const dir = await mkdtemp(join(tmpdir(), 'chaperone-http-download-'));
await writeFile(join(dir, 'ca.crt'), up.caPem);
const h = await startHttpHarness({
  target: {
    protocol: 'http',
    upstream: { host: '127.0.0.1', port: up.port },
    tls: { caFile: join(dir, 'ca.crt') },
    http: { credential: 'bearer' },
  },
  segmentSeconds: 10,
});

// What the upstream sends (upstream-server.ts /download): 64 KiB chunks of "chaperone ", cut at the end.
const expected = createHash('sha256');
const chunk = Buffer.alloc(64 * 1024, 'chaperone ');
for (let sent = 0; sent < bytes; sent += chunk.length)
  expected.update(chunk.subarray(0, Math.min(chunk.length, bytes - sent)));
const sha256 = expected.digest('hex');

const rss: number[] = [process.memoryUsage().rss];
const sampler = setInterval(() => rss.push(process.memoryUsage().rss), 100);
const started = performance.now();
const run = await runProcess(
  'curl',
  [
    '-sS',
    '-o',
    '/dev/null',
    '-w',
    '%{size_download}',
    '-H',
    `Authorization: Bearer ${h.token}`,
    `${h.base}/download?bytes=${bytes}`,
  ],
  { env: process.env, timeoutMs: 60 * 60_000 },
);
if (run.code !== 0) throw new Error(`curl exit ${run.code}: ${run.stderr}`);
const out = run.stdout;
const seconds = (performance.now() - started) / 1000;
clearInterval(sampler);
rss.push(process.memoryUsage().rss);
if (Number(out) !== bytes) throw new Error(`curl received ${out} bytes, expected ${bytes}`);

const events = await h.waitForSession((evs) =>
  evs.some(
    (e) => e.kind === 'http.response' && (e.payload as { body?: { bytes: number } }).body?.bytes === bytes,
  ),
);
const body = (
  events.find((e) => e.kind === 'http.response')!.payload as { body: { bytes: number; sha256: string } }
).body;
if (body.sha256 !== sha256) throw new Error(`recorded sha256 ${body.sha256}, sent ${sha256}`);

process.stdout.write(
  `${[
    `download ${mib(bytes)} MiB via the sidecar (curl, durability strict): ${seconds.toFixed(1)} s, ${(bytes / 1024 / 1024 / seconds).toFixed(0)} MiB/s, load ${loadavg()[0]!.toFixed(1)}`,
    `process RSS (sidecar + upstream, MiB): first ${mib(rss[0]!)}, max ${mib(Math.max(...rss))}, last ${mib(rss.at(-1)!)}; at each tenth of the run ${Array.from({ length: 9 }, (_, i) => mib(rss[Math.floor(((i + 1) * rss.length) / 10)]!)).join(' ')} (${rss.length} samples)`,
    `recorded: ${body.bytes} bytes, sha256 matches what the upstream sent`,
  ].join('\n')}\n`,
);
await h.close();
await up.close();
await rm(dir, { recursive: true, force: true });
process.exit(0);
