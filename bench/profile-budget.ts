// Where a sidecar's main thread spends its time, by part, from a V8 CPU profile (`--cpu-prof`, as
// `BENCH_CPU_PROF=1 node bench/postgres.bench.ts` writes to bench/out/): each sample goes to the
// part of the nearest frame on its stack that belongs to one (framing, classification, recording,
// masking, upload, ...); socket sends and receives count as kernel whatever called them.
//   node bench/profile-budget.ts <file.cpuprofile> [--last 15] [--skip-last 0]
// --last 15: only the last 15 s of the profile (the run itself); --skip-last 20: leave out the last
// 20 s (an earlier run of the same process).
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string };
  children?: number[];
}
interface Profile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

/** First match wins, checked from the sampled frame outwards. */
const PARTS: [string, (fn: string, url: string) => boolean][] = [
  [
    'kernel: socket send/receive',
    (fn, url) => url === '' && /^(writeBuffer|writev|writeUtf8String|read|onStreamRead)$/.test(fn),
  ],
  ['gc', (fn) => fn === '(garbage collector)'],
  [
    'classification (SQL guard)',
    (_fn, url) => /sidecar\/policy\/sql\/|libpg-query|pgsql-parser|^wasm:/.test(url),
  ],
  ['masking', (_fn, url) => /sidecar\/policy\/mask/.test(url)],
  ['upload (S3 client)', (_fn, url) => /@aws-sdk|@smithy|uploader\.ts|stores\//.test(url)],
  ['recording (append, journal, seal)', (_fn, url) => /\/recording\//.test(url)],
  [
    'session (decisions, capture)',
    (_fn, url) => /sidecar\/session\/|sidecar\/postgres\/session\.ts/.test(url),
  ],
  ['framing (protocol, frontend, upstream)', (_fn, url) => /sidecar\/postgres\//.test(url)],
  ['identity, server, metrics', (_fn, url) => /sidecar\//.test(url)],
  ['module loading', (_fn, url) => /node:internal\/modules|node:internal\/bootstrap/.test(url)],
];

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: { last: { type: 'string' }, 'skip-last': { type: 'string' } },
});
const profile = JSON.parse(readFileSync(positionals[0]!, 'utf8')) as Profile;
const byId = new Map(profile.nodes.map((n) => [n.id, n]));
const parent = new Map<number, number>();
for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);

const partOf = new Map<number, string>();
function classify(id: number): string {
  const known = partOf.get(id);
  if (known) return known;
  let part = 'other (node internals, event loop)';
  for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
    const { functionName, url } = byId.get(cur)!.callFrame;
    if (functionName === '(idle)') {
      part = 'idle';
      break;
    }
    const hit = PARTS.find(([, test]) => test(functionName, url));
    if (hit) {
      part = hit[0];
      break;
    }
  }
  partOf.set(id, part);
  return part;
}

const until = profile.endTime - Number(values['skip-last'] ?? 0) * 1e6;
const from = values.last ? until - Number(values.last) * 1e6 : 0;
const totals = new Map<string, number>();
let t = profile.startTime;
for (let i = 0; i < profile.samples.length; i++) {
  t += profile.timeDeltas[i] ?? 0;
  if (t < from || t > until) continue;
  const part = classify(profile.samples[i]!);
  totals.set(part, (totals.get(part) ?? 0) + (profile.timeDeltas[i] ?? 0));
}
const busy = [...totals].filter(([p]) => p !== 'idle').reduce((a, [, v]) => a + v, 0);
process.stdout.write(`| part | share of busy main thread | ms |\n| --- | ---: | ---: |\n`);
for (const [part, us] of [...totals].sort((a, b) => b[1] - a[1])) {
  if (part === 'idle') continue;
  process.stdout.write(`| ${part} | ${((100 * us) / busy).toFixed(1)} % | ${(us / 1000).toFixed(0)} |\n`);
}
process.stdout.write(
  `busy ${(busy / 1e6).toFixed(2)} s, idle ${((totals.get('idle') ?? 0) / 1e6).toFixed(2)} s\n`,
);
