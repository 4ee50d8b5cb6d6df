// Preload for a process under benchmark (the sidecar): counts V8's garbage collections by kind and
// samples every allocation, including objects the young and old generation collections freed
// (which `--heap-prof` leaves out: it reports only what is still live when the process exits).
// On exit it writes <dir>/alloc-<pid>.json: { gc: { scavenge, markSweep, ... }, samples by function }.
//
//   node --import ./bench/alloc-profile.ts sidecar/main.ts ...       (ALLOC_PROFILE_DIR, default bench/out)
//   BENCH_SIDECAR_NODE_FLAGS="... --import=$PWD/bench/alloc-profile.ts" node bench/postgres.bench.ts
//   node bench/alloc-profile.ts bench/out/alloc-<pid>.json [--per N]   prints the top allocators
//     (--per N: bytes and GCs divided by N, e.g. the run's transaction count)

import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { Session } from 'node:inspector';
import { join } from 'node:path';
import { constants, type PerformanceEntry, PerformanceObserver } from 'node:perf_hooks';

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
}
interface ProfileNode {
  callFrame: CallFrame;
  selfSize: number;
  children: ProfileNode[];
}
interface Report {
  gc: Record<string, number>;
  gcMs: number;
  head: ProfileNode;
}

const GC_KINDS: Record<number, string> = {
  [constants.NODE_PERFORMANCE_GC_MINOR]: 'scavenge',
  [constants.NODE_PERFORMANCE_GC_MAJOR]: 'markSweep',
  [constants.NODE_PERFORMANCE_GC_INCREMENTAL]: 'incremental',
  [constants.NODE_PERFORMANCE_GC_WEAKCB]: 'weakCallbacks',
};

function record(): void {
  const dir = process.env.ALLOC_PROFILE_DIR ?? join(process.cwd(), 'bench', 'out');
  const gc: Record<string, number> = {};
  let gcMs = 0;
  const count = (entries: PerformanceEntry[]) => {
    for (const e of entries) {
      const kind = GC_KINDS[(e as unknown as { detail: { kind: number } }).detail.kind] ?? 'other';
      gc[kind] = (gc[kind] ?? 0) + 1;
      gcMs += e.duration;
    }
  };
  const observer = new PerformanceObserver((list) => count(list.getEntries()));
  observer.observe({ entryTypes: ['gc'] });
  const session = new Session();
  session.connect();
  session.post('HeapProfiler.startSampling', {
    samplingInterval: 16384,
    includeObjectsCollectedByMajorGC: true,
    includeObjectsCollectedByMinorGC: true,
  });
  process.once('exit', () => {
    count(observer.takeRecords());
    // The in-thread session answers synchronously.
    session.post('HeapProfiler.stopSampling', (err, res) => {
      if (err) return;
      mkdirSync(dir, { recursive: true });
      const report: Report = {
        gc,
        gcMs,
        head: (res as unknown as { profile: { head: ProfileNode } }).profile.head,
      };
      writeFileSync(join(dir, `alloc-${process.pid}.json`), JSON.stringify(report));
    });
  });
}

function print(file: string, per: number): void {
  const report = JSON.parse(readFileSync(file, 'utf8')) as Report;
  const byFn = new Map<string, number>();
  let total = 0;
  const walk = (n: ProfileNode) => {
    const f = n.callFrame;
    const key = `${f.functionName || '(anonymous)'} ${f.url.replace(/^file:\/\/.*?\/(sidecar|recording|node_modules)\//, '$1/')}:${f.lineNumber + 1}`;
    byFn.set(key, (byFn.get(key) ?? 0) + n.selfSize);
    total += n.selfSize;
    for (const c of n.children) walk(c);
  };
  walk(report.head);
  const gcs = Object.entries(report.gc)
    .map(([k, v]) => `${k} ${(v / per).toFixed(per === 1 ? 0 : 3)}`)
    .join(', ');
  process.stdout.write(
    `allocated ${(total / per).toFixed(0)} bytes${per === 1 ? '' : ' per unit'} (sampled); GCs: ${gcs}; GC ${report.gcMs.toFixed(0)} ms\n`,
  );
  for (const [key, bytes] of [...byFn].sort((a, b) => b[1] - a[1]).slice(0, 30))
    process.stdout.write(
      `${(bytes / per).toFixed(0).padStart(10)}  ${((bytes / total) * 100).toFixed(1).padStart(5)} %  ${key}\n`,
    );
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const perAt = process.argv.indexOf('--per');
  print(process.argv[2] as string, perAt > 0 ? Number(process.argv[perAt + 1]) : 1);
} else {
  record();
}
