// Child process of recording.bench.ts: writes one long session of `--bytes` event bytes through a
// recorder to the store, then prints its peak RSS as JSON. Run alone so nothing else counts.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateSigningKey, openRecorder, type S3Options } from '../recording/index.ts';
import { sampleHeader } from '../recording/testing/sample-header.ts';

const mib = (n: number) => Math.round(n / 1048576);
const memoryMiB = () => {
  const m = process.memoryUsage();
  return {
    rss: mib(m.rss),
    heap: mib(m.heapUsed),
    heapTotal: mib(m.heapTotal),
    external: mib(m.external),
    arrayBuffers: mib(m.arrayBuffers),
  };
};
/** After loading the modules, before any session: the floor the writer starts from. */
const loadedMiB = memoryMiB();
const args = JSON.parse(process.argv[2] ?? '{}') as { store: string; s3?: S3Options; bytes: number };
const dir = await mkdtemp(join(tmpdir(), 'chaperone-bench-rss-'));
const rec = await openRecorder({
  spoolDir: dir,
  store: args.store,
  ...(args.s3 ? { s3: args.s3 } : {}),
  signingKey: generateSigningKey().privateKeyPem,
});
const session = await rec.startSession(sampleHeader());
const started = performance.now();
let written = 0;
let i = 0;
const rssSamples: number[] = [];
const memorySamples: {
  rss: number;
  heap: number;
  heapTotal: number;
  external: number;
  arrayBuffers: number;
}[] = [];
const rows = (n: number) =>
  Array.from({ length: 8 }, (_, r) => [n + r, `customer-${(n * 31 + r) % 9973}`, `note ${'x'.repeat(60)}`]);
while (written < args.bytes) {
  const batch: Promise<void>[] = [];
  for (let k = 0; k < 256; k++, i++) {
    const payload = { command: 'SELECT', rows: 8, data: rows(i) };
    written += 120 + JSON.stringify(payload).length;
    batch.push(session.append({ kind: 'pg.result', direction: 'server', payload }));
  }
  await Promise.all(batch);
  if (i % (256 * 64) === 0) {
    const m = memoryMiB();
    rssSamples.push(m.rss);
    memorySamples.push(m);
  }
}
await session.end({ reason: 'done' });
const appendedS = (performance.now() - started) / 1000;
await rec.close({ deadlineMs: 600_000 });
const totalS = (performance.now() - started) / 1000;
await rm(dir, { recursive: true, force: true });
process.stdout.write(
  `${JSON.stringify({
    events: i,
    eventBytes: written,
    appendSeconds: appendedS,
    totalSeconds: totalS,
    maxRssBytes: process.resourceUsage().maxRSS * 1024,
    loadedMiB,
    rssSamplesMiB: rssSamples,
    memorySamplesMiB: memorySamples,
  })}\n`,
);
