// Runs every benchmark in bench/*.bench.ts, one child process each, one after the other.
//   node bench/run.ts                 all benchmarks
//   node bench/run.ts recording       only files whose name contains "recording"
//   node bench/run.ts -- --full       extra arguments after -- go to every benchmark
import { spawn } from 'node:child_process';
import { readdir } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';

const dir = fileURLToPath(new URL('.', import.meta.url));
const dash = process.argv.indexOf('--');
const filters = (dash >= 0 ? process.argv.slice(2, dash) : process.argv.slice(2)).filter(
  (a) => !a.startsWith('-'),
);
const passThrough =
  dash >= 0 ? process.argv.slice(dash + 1) : process.argv.slice(2).filter((a) => a.startsWith('-'));

const files = (await readdir(dir))
  .filter((f) => f.endsWith('.bench.ts'))
  .filter((f) => filters.length === 0 || filters.some((x) => f.includes(x)))
  .sort();
if (files.length === 0) {
  process.stderr.write(`no benchmarks match ${filters.join(', ') || '*'} in ${dir}\n`);
  process.exit(1);
}
const failed: string[] = [];
for (const f of files) {
  process.stdout.write(`\n=== ${f} ===\n`);
  const started = Date.now();
  const code = await new Promise<number>((resolve) => {
    const child = spawn(process.execPath, [`${dir}${f}`, ...passThrough], { stdio: 'inherit' });
    child.on('exit', (c, signal) => resolve(c ?? (signal ? 1 : 0)));
  });
  process.stdout.write(
    `=== ${f}: ${code === 0 ? 'done' : `FAILED (exit ${code})`} in ${((Date.now() - started) / 1000).toFixed(1)} s ===\n`,
  );
  if (code !== 0) failed.push(f);
}
if (failed.length > 0) {
  process.stderr.write(`failed: ${failed.join(', ')}\n`);
  process.exit(1);
}
