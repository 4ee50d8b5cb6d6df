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

/** [old path, new path], relative to the repository root. */
export const MOVES: [string, string][] = [
  ['sidecar/identity/local-issuer.testkit.ts', 'sidecar/identity/testing/local-issuer.ts'],
  ['sidecar/kubernetes-approvals/testing.ts', 'sidecar/kubernetes-approvals/testing/approvals.ts'],
  ['sidecar/policy/approvals/manual.ts', 'sidecar/policy/approvals/testing/manual.ts'],
  ['sidecar/postgres/test-support.ts', 'sidecar/postgres/testing/harness.ts'],
  ['webhook/test-support/fixtures.ts', 'webhook/testing/fixtures.ts'],
  ['webhook/test-support/golden.ts', 'webhook/testing/golden.ts'],
  ['webhook/test-support/harness.ts', 'webhook/testing/harness.ts'],
  ['webhook/test-support/net-tools.ts', 'webhook/testing/net-tools.ts'],
  ['webhook/test-support/netns.ts', 'webhook/testing/netns.ts'],
  ['webhook/test-support/pki.ts', 'webhook/testing/pki.ts'],
];

const git = (...args: string[]) => execFileSync('git', args, { cwd: root, encoding: 'utf8' });

for (const [from, to] of MOVES) {
  if (existsSync(join(root, from)) && !existsSync(join(root, to))) {
    mkdirSync(dirname(join(root, to)), { recursive: true });
    git('mv', from, to);
    process.stdout.write(`moved ${from} -> ${to}\n`);
  }
}

const movedTo = new Map(MOVES.map(([from, to]) => [join(root, from), join(root, to)]));
const movedFrom = new Map(MOVES.map(([from, to]) => [join(root, to), join(root, from)]));

const toSpecifier = (fromDir: string, target: string, keepSlash: boolean) => {
  let rel = relative(fromDir, target);
  if (!rel.startsWith('.')) rel = `./${rel}`;
  return keepSlash && !rel.endsWith('/') ? `${rel}/` : rel;
};

let changed = 0;
for (const file of git('ls-files', '--', '*.ts')
  .split('\n')
  .filter((f) => f !== '')) {
  const abs = join(root, file);
  if (!existsSync(abs)) continue;
  const dir = dirname(abs);
  const oldDir = dirname(movedFrom.get(abs) ?? abs);
  const text = readFileSync(abs, 'utf8');
  const next = text.replace(/(['"])(\.{1,2}\/[^'"\n]*)\1/g, (whole, quote: string, spec: string) => {
    const slash = spec.endsWith('/');
    const here = resolve(dir, spec);
    let target: string | undefined;
    if (movedTo.has(here)) target = movedTo.get(here);
    else if (existsSync(here)) return whole;
    else {
      const before = resolve(oldDir, spec);
      if (movedTo.has(before)) target = movedTo.get(before);
      else if (existsSync(before)) target = before;
    }
    if (!target) return whole;
    return `${quote}${toSpecifier(dir, target, slash)}${quote}`;
  });
  if (next !== text) {
    writeFileSync(abs, next);
    changed += 1;
    process.stdout.write(`rewrote paths in ${file}\n`);
  }
}
process.stdout.write(`${changed} file(s) rewritten\n`);
