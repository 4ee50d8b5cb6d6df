// Moves test helpers into their folder's `testing/` directory (code-guide item 5: one home for
// test code, so images can exclude `**/testing/**`) and rewrites every relative path that points at
// a moved file, in every tracked .ts file, including the moved files' own imports. Safe to run
// again: moves already done are skipped, and paths are only rewritten when they resolve to a moved
// file or stopped resolving because their file moved. Run after merging branches that still import
// the old paths:   node scripts/move-test-code.ts
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';

const root = resolve(import.meta.dirname, '..');

/** [old path, new path], relative to the repository root; a path ending in / moves a directory. */
export const MOVES: [string, string][] = [
  ['sidecar/identity/local-issuer.testkit.ts', 'sidecar/identity/testing/local-issuer.ts'],
  ['sidecar/kubernetes-approvals/testing.ts', 'sidecar/kubernetes-approvals/testing/approvals.ts'],
  ['sidecar/policy/approvals/manual.ts', 'sidecar/policy/approvals/testing/manual.ts'],
  ['sidecar/postgres/test-support.ts', 'sidecar/postgres/testing/harness.ts'],
  ['webhook/test-support/', 'webhook/testing/'],
];

const git = (...args: string[]) => execFileSync('git', args, { cwd: root, encoding: 'utf8' });
const tracked = () =>
  git('ls-files')
    .split('\n')
    .filter((f) => f !== '');

/** Every file move, directories expanded to the files they hold now. */
const fileMoves: [string, string][] = [];
for (const [from, to] of MOVES) {
  if (!from.endsWith('/')) fileMoves.push([from, to]);
  else
    for (const f of tracked().filter((t) => t.startsWith(from)))
      fileMoves.push([f, to + f.slice(from.length)]);
}

for (const [from, to] of fileMoves) {
  if (existsSync(join(root, from)) && !existsSync(join(root, to))) {
    mkdirSync(dirname(join(root, to)), { recursive: true });
    git('mv', from, to);
    process.stdout.write(`moved ${from} -> ${to}\n`);
  }
}

/** Where an old absolute path lives now (files, and anything under a moved directory). */
function movedTarget(abs: string): string | undefined {
  for (const [from, to] of MOVES) {
    const a = join(root, from);
    if (from.endsWith('/') ? abs.startsWith(a) || `${abs}/` === a : abs === a)
      return from.endsWith('/') ? join(root, to, abs.slice(a.length)) : join(root, to);
  }
  return undefined;
}
/** Where a moved file used to live. */
function movedSource(abs: string): string | undefined {
  for (const [from, to] of MOVES) {
    const b = join(root, to);
    if (to.endsWith('/') ? abs.startsWith(b) : abs === b)
      return to.endsWith('/') ? join(root, from, abs.slice(b.length)) : join(root, from);
  }
  return undefined;
}

const toSpecifier = (fromDir: string, target: string, keepSlash: boolean) => {
  let rel = relative(fromDir, target);
  if (!rel.startsWith('.')) rel = `./${rel}`;
  return keepSlash && !rel.endsWith('/') ? `${rel}/` : rel;
};

let changed = 0;
for (const file of tracked().filter((f) => f.endsWith('.ts'))) {
  const abs = join(root, file);
  if (!existsSync(abs)) continue;
  const dir = dirname(abs);
  const oldDir = dirname(movedSource(abs) ?? abs);
  const text = readFileSync(abs, 'utf8');
  const next = text.replace(/(['"])(\.{1,2}\/[^'"\n]*)\1/g, (whole, quote: string, spec: string) => {
    const slash = spec.endsWith('/');
    const here = resolve(dir, spec);
    if (existsSync(here)) return whole;
    let target = movedTarget(here);
    if (!target || !existsSync(target)) {
      const before = resolve(oldDir, spec);
      target = movedTarget(before) ?? before;
    }
    if (!existsSync(target)) return whole;
    return `${quote}${toSpecifier(dir, target, slash)}${quote}`;
  });
  if (next !== text) {
    writeFileSync(abs, next);
    changed += 1;
    process.stdout.write(`rewrote paths in ${file}\n`);
  }
}
process.stdout.write(`${changed} file(s) rewritten\n`);
