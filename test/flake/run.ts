// The flake detector (`make flake`): runs the suite, or the files in FLAKE_FILES, FLAKE_RUNS times
// (default 3) while a busy loop competes for one core, and reports every test that did not pass
// every time, with the number of tests and the duration of each run. Exit status 1 when a test
// is flaky or failed.
//   FLAKE_FILES='recording/journal.test.ts webhook/tls.test.ts' FLAKE_RUNS=3 make flake
//   FLAKE_PRESSURE=0 turns the busy loop off; FLAKE_OUT=<dir> keeps the per-run results there.
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdir, mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Finished } from './reporter.ts';

const root = join(import.meta.dirname, '..', '..');
const DEFAULT_FILES =
  '{recording,sidecar,webhook,operator,cli,kubectl-plugin,release,crds,charts,test}/**/*.test.ts';
const files = (process.env.FLAKE_FILES?.trim() || DEFAULT_FILES)
  // Whitespace separates files; a comma may not, since it belongs to a brace glob such as the
  // Makefile's TEST_FILES.
  .split(/\s+/)
  .map((f) => f.replace(/^'(.*)'$/, '$1')) // the Makefile's quoted glob
  .filter((f) => f !== '');
const runs = Number(process.env.FLAKE_RUNS ?? 3);
const pressure = Number(process.env.FLAKE_PRESSURE ?? 1);
if (!Number.isInteger(runs) || runs < 1) throw new Error(`FLAKE_RUNS must be a positive integer: ${runs}`);

interface RunResult {
  run: number;
  exitCode: number;
  seconds: number;
  tests: Finished[];
}

const out = process.env.FLAKE_OUT ?? (await mkdtemp(join(tmpdir(), 'chaperone-flake-')));
await mkdir(out, { recursive: true });

/** Busy loops competing for the CPU (one core each), killed when the detector ends. */
const burners: ChildProcess[] = [];
const stopBurners = () => {
  for (const b of burners) if (b.exitCode === null && b.signalCode === null) b.kill('SIGKILL');
};
process.on('exit', stopBurners);
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    stopBurners();
    process.exit(130);
  });
}
for (let i = 0; i < pressure; i++) {
  burners.push(spawn(process.execPath, ['-e', 'for (;;) {}'], { stdio: 'ignore' }));
}

async function runOnce(run: number): Promise<RunResult> {
  const results = join(out, `run-${run}.jsonl`);
  const args = [
    '--test',
    '--test-timeout=600000',
    '--test-global-setup=test/env/global-setup.ts',
    `--test-reporter=${join(import.meta.dirname, 'reporter.ts')}`,
    `--test-reporter-destination=${results}`,
    '--test-reporter=dot',
    '--test-reporter-destination=stdout',
    ...files,
  ];
  const started = performance.now();
  const exitCode = await new Promise<number>((resolve) => {
    const child = spawn(process.execPath, args, { cwd: root, stdio: ['ignore', 'inherit', 'inherit'] });
    child.on('exit', (code, signal) => resolve(code ?? (signal ? 1 : 0)));
  });
  const seconds = (performance.now() - started) / 1000;
  const text = await readFile(results, 'utf8').catch(() => '');
  const tests = text
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l) as Finished);
  return { run, exitCode, seconds, tests };
}

const all: RunResult[] = [];
try {
  for (let run = 1; run <= runs; run++) {
    process.stdout.write(`\n=== flake run ${run}/${runs} (${pressure} busy loop(s)) ===\n`);
    all.push(await runOnce(run));
  }
} finally {
  stopBurners();
}

// Outcomes per test across runs.
const byTest = new Map<string, { file: string; outcomes: Finished['outcome'][]; errors: string[] }>();
for (const r of all) {
  for (const t of r.tests) {
    const key = `${t.file}\u0000${t.name}`;
    const entry = byTest.get(key) ?? { file: t.file, outcomes: [], errors: [] };
    entry.outcomes.push(t.outcome);
    if (t.error) entry.errors.push(`run ${r.run}: ${t.error}`);
    byTest.set(key, entry);
  }
}
const rel = (file: string) => (file.startsWith(`${root}/`) ? file.slice(root.length + 1) : file);
const flaky: string[] = [];
const failing: string[] = [];
for (const [key, entry] of byTest) {
  const name = key.split('\u0000')[1];
  const ran = entry.outcomes.filter((o) => o !== 'skip');
  const fails = ran.filter((o) => o === 'fail').length;
  // Missing from some run (its file crashed or timed out) counts as not passing that time.
  const missing = runs - entry.outcomes.length;
  const line = `${rel(entry.file)} > ${name}: passed ${ran.length - fails} of ${runs}${missing ? ` (${missing} run(s) without a result)` : ''}${entry.errors.length ? `\n      ${entry.errors.join('\n      ')}` : ''}`;
  if (fails === ran.length && fails > 0 && missing === 0) failing.push(line);
  else if (fails > 0 || missing > 0) flaky.push(line);
}

const report = [
  '',
  `flake report: ${runs} run(s) of ${files.join(' ')} under ${pressure} busy loop(s)`,
  ...all.map((r) => {
    const count = (o: Finished['outcome']) => r.tests.filter((t) => t.outcome === o).length;
    return `  run ${r.run}: ${r.tests.length} tests (${count('pass')} passed, ${count('fail')} failed, ${count('skip')} skipped) in ${r.seconds.toFixed(1)} s, exit ${r.exitCode}`;
  }),
  `  flaky (passed some runs, not all): ${flaky.length}`,
  ...flaky.map((l) => `    ${l}`),
  `  failed every run: ${failing.length}`,
  ...failing.map((l) => `    ${l}`),
  `  per-run results: ${out}`,
  '',
].join('\n');
process.stdout.write(report);
await writeFile(join(out, 'report.txt'), report);
process.exitCode = flaky.length > 0 || failing.length > 0 || all.some((r) => r.exitCode !== 0) ? 1 : 0;
