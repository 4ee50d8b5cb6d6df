// Recording pipeline benchmark: writer + upload to a real MinIO.
//   node bench/recording.bench.ts            default run (a few minutes at most on 2 cores)
//   node bench/recording.bench.ts --full     also the 1 GiB single-session RSS case
//   --rss-only skips the throughput cases; --memory prints heap/external/arrayBuffers samples
//   --node-flags='--max-semi-space-size=2' runs the RSS child with these Node/V8 flags
//   --tuned runs the RSS child with the memory settings recommended for the sidecar container
//     (TUNED below: a bounded young generation and glibc malloc limits), reported as rss_*_tuned

import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ListObjectsV2Command, type ListObjectsV2CommandOutput, S3Client } from '@aws-sdk/client-s3';
import { generateSigningKey, openRecorder, type S3Options } from '../recording/index.ts';
import { sampleHeader, sqlEvents } from '../recording/testing/fixtures.ts';
import { SIDECAR_IMAGE_ENV, SIDECAR_NODE_FLAGS } from '../sidecar/index.ts';
import { startEnv } from '../test/env/index.ts';

const full = process.argv.includes('--full');
/**
 * Memory settings recommended for the sidecar container. Flags go on the image entrypoint's node
 * command line (sidecar/entrypoint.ts: `node --max-semi-space-size=4 sidecar/main.ts`): V8's young
 * generation stays at 4 MiB semi-spaces instead of growing to 16 MiB ones. The env makes glibc return freed large blocks (zstd and I/O buffers) to the kernel
 * instead of keeping fragmented arenas, one per thread-pool thread.
 */
// The sidecar image's own settings (sidecar/entrypoint.ts), so this measures what ships.
const TUNED = { flags: [...SIDECAR_NODE_FLAGS], env: { ...SIDECAR_IMAGE_ENV } };
const childFlags = (
  process.argv.find((a) => a.startsWith('--node-flags='))?.slice('--node-flags='.length) ?? ''
)
  .split(' ')
  .filter(Boolean);
const MiB = 1024 * 1024;
const env = await startEnv(['minio']);
const minio = env.info.minio!;
const s3: S3Options = {
  endpoint: minio.endpoint,
  region: minio.region,
  forcePathStyle: true,
  credentials: { accessKeyId: minio.accessKeyId, secretAccessKey: minio.secretAccessKey },
};
const client = new S3Client({ ...s3, requestChecksumCalculation: 'WHEN_REQUIRED' });

async function storedBytes(prefix: string): Promise<{ bytes: number; objects: number }> {
  let bytes = 0;
  let objects = 0;
  let token: string | undefined;
  do {
    const page: ListObjectsV2CommandOutput = await client.send(
      new ListObjectsV2Command({
        Bucket: minio.bucket,
        Prefix: prefix,
        ...(token ? { ContinuationToken: token } : {}),
      }),
    );
    for (const o of page.Contents ?? []) {
      bytes += o.Size ?? 0;
      objects++;
    }
    token = page.IsTruncated ? page.NextContinuationToken : undefined;
  } while (token);
  return { bytes, objects };
}

/** Many concurrent sessions, each appending a statement + its result and waiting for both (as a gateway does). */
async function throughput(sessions: number, statementsPerSession: number) {
  const dir = await mkdtemp(join(tmpdir(), 'chaperone-bench-'));
  const prefix = `bench-throughput-${sessions}`;
  const rec = await openRecorder({
    spoolDir: dir,
    store: `s3://${minio.bucket}/${prefix}`,
    s3,
    signingKey: generateSigningKey().privateKeyPem,
  });
  const started = performance.now();
  const open = await Promise.all(
    Array.from({ length: sessions }, (_, i) =>
      rec.startSession(sampleHeader({ identity: { pod: `bench-${i}`, namespace: 'bench' } })),
    ),
  );
  let payloadBytes = 0;
  let lineBytes = 0;
  const cpu0 = process.cpuUsage();
  await Promise.all(
    open.map(async (s, si) => {
      for (let i = 0; i < statementsPerSession; i++) {
        const [q, r] = sqlEvents(i + si);
        payloadBytes +=
          Buffer.byteLength(JSON.stringify(q.payload)) + Buffer.byteLength(JSON.stringify(r.payload));
        await Promise.all([s.append(q), s.append(r)]);
      }
    }),
  );
  const appendS = (performance.now() - started) / 1000;
  const cpu = process.cpuUsage(cpu0);
  await Promise.all(open.map((s) => s.end({ reason: 'done' })));
  await rec.close({ deadlineMs: 600_000 });
  const totalS = (performance.now() - started) / 1000;
  const stored = await storedBytes(`${prefix}/`);
  await rm(dir, { recursive: true, force: true });
  const events = sessions * statementsPerSession * 2;
  // Event line bytes: the JSON Lines the segments hold before compression.
  lineBytes = payloadBytes + events * 95;
  return {
    sessions,
    events,
    appendSeconds: +appendS.toFixed(2),
    eventsPerSecond: Math.round(events / appendS),
    payloadMiBPerSecond: +(payloadBytes / MiB / appendS).toFixed(1),
    endToEndSeconds: +totalS.toFixed(2),
    endToEndEventsPerSecond: Math.round(events / totalS),
    cpuUserSeconds: +(cpu.user / 1e6).toFixed(2),
    cpuSystemSeconds: +(cpu.system / 1e6).toFixed(2),
    payloadMiB: +(payloadBytes / MiB).toFixed(1),
    approxEventLineMiB: +(lineBytes / MiB).toFixed(1),
    storedMiB: +(stored.bytes / MiB).toFixed(2),
    storedObjects: stored.objects,
    storedPerPayload: +(stored.bytes / payloadBytes).toFixed(3),
  };
}

async function rss(bytes: number, tuned = false) {
  const prefix = `bench-rss-${bytes}${tuned ? '-tuned' : ''}`;
  const out = await new Promise<string>((resolve, reject) => {
    const child = spawn(
      process.execPath,
      [
        ...(tuned ? TUNED.flags : childFlags),
        new URL('./recording-rss.ts', import.meta.url).pathname,
        JSON.stringify({ store: `s3://${minio.bucket}/${prefix}`, s3, bytes }),
      ],
      {
        stdio: ['ignore', 'pipe', 'inherit'],
        ...(tuned ? { env: { ...process.env, ...TUNED.env } } : {}),
      },
    );
    let text = '';
    child.stdout.on('data', (d) => {
      text += d;
    });
    child.on('exit', (code) => (code === 0 ? resolve(text) : reject(new Error(`rss child exited ${code}`))));
  });
  const r = JSON.parse(out) as {
    events: number;
    eventBytes: number;
    appendSeconds: number;
    totalSeconds: number;
    maxRssBytes: number;
    loadedMiB: unknown;
    rssSamplesMiB: number[];
    memorySamplesMiB: unknown[];
  };
  const stored = await storedBytes(`${prefix}/`);
  return {
    sessionMiB: +(r.eventBytes / MiB).toFixed(0),
    events: r.events,
    appendSeconds: +r.appendSeconds.toFixed(1),
    eventMiBPerSecond: +(r.eventBytes / MiB / r.appendSeconds).toFixed(1),
    totalSeconds: +r.totalSeconds.toFixed(1),
    peakRssMiB: +(r.maxRssBytes / MiB).toFixed(1),
    ...(tuned ? { tuned: TUNED } : childFlags.length > 0 ? { nodeFlags: childFlags.join(' ') } : {}),
    loadedMiB: r.loadedMiB,
    rssSamplesMiB: r.rssSamplesMiB,
    ...(process.argv.includes('--memory') ? { memorySamplesMiB: r.memorySamplesMiB } : {}),
    storedMiB: +(stored.bytes / MiB).toFixed(1),
    storedObjects: stored.objects,
  };
}

try {
  const results: Record<string, unknown> = {};
  if (!process.argv.includes('--rss-only')) {
    results.sqlWorkload_1session = await throughput(1, 20_000);
    results.sqlWorkload_50sessions = await throughput(50, 2_000);
    results.sqlWorkload_200sessions = await throughput(200, 500);
  }
  const tuned = process.argv.includes('--tuned');
  results.rss_256MiB = await rss(256 * MiB);
  if (tuned) results.rss_256MiB_tuned = await rss(256 * MiB, true);
  if (full) results.rss_1GiB = await rss(1024 * MiB);
  if (full && tuned) results.rss_1GiB_tuned = await rss(1024 * MiB, true);
  for (const [name, r] of Object.entries(results)) process.stdout.write(`${name}: ${JSON.stringify(r)}\n`);
} finally {
  client.destroy();
  await env.stop();
}
