// No test data left behind: every file in a `testdata/` directory must be named by the code of its
// folder, literally (`'pods/policy.yaml'`) or through a template whose parts are literals there
// (`pods/${name}.in.yaml` with `'plain'` in the case list). Directories owned by one golden test
// check this at run time instead (GoldenDir.assertNoStrayFiles) and are skipped here; this static
// check covers testdata shared by several test files.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { test } from 'node:test';

const root = join(import.meta.dirname, '..', '..');

const escapeRegExp = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** Is `name` (relative to its testdata directory) named by one of `sources`? */
export function isReferenced(name: string, sources: string[]): boolean {
  for (const source of sources) {
    if (source.includes(name)) return true;
    for (const [, template] of source.matchAll(/`([^`]*\$\{[^`]*)`/g)) {
      const parts = template!.split(/\$\{[^}]*\}/);
      // Templates naming a path: match the file's path (or its tail) against the template.
      const pattern = new RegExp(`(?:^|/)${parts.map(escapeRegExp).join('([\\w.-]+)')}$`);
      const match = pattern.exec(name) ?? pattern.exec(`/${name}`);
      if (!match) continue;
      if (parts.join('') === '') continue;
      if (match.slice(1).every((value) => source.includes(`'${value}'`) || source.includes(`"${value}"`)))
        return true;
    }
  }
  return false;
}

test('every file in a testdata directory is named by its folder’s code', () => {
  const files = execFileSync('git', ['ls-files'], { cwd: root, encoding: 'utf8' }).split('\n');
  const testdata = files.filter((f) => /(^|\/)testdata\//.test(f));
  assert.ok(testdata.length > 10, `found ${testdata.length} testdata files`);
  const unused: string[] = [];
  for (const file of testdata) {
    const dir = file.slice(0, file.indexOf('testdata/') + 'testdata/'.length);
    const folder = dirname(dir);
    const sources = files
      .filter((f) => f.endsWith('.ts') && f.startsWith(`${folder}/`) && !f.includes('/testdata/'))
      .map((f) => readFileSync(join(root, f), 'utf8'));
    // A golden directory that checks for stray files itself at run time (test/testing/golden.ts).
    if (sources.some((s) => s.includes('assertNoStrayFiles('))) continue;
    const name = relative(dir, file);
    if (!isReferenced(name, sources)) unused.push(file);
  }
  assert.deepEqual(unused, [], 'test data no code names: delete it or add the case that reads it');
});

test('the reference check follows templates only through literal case names', () => {
  const inject = `for (const name of ['plain', 'job']) read(\`pods/$\{name}.in.yaml\`);`;
  assert.equal(isReferenced('pods/plain.in.yaml', [inject]), true);
  assert.equal(isReferenced('pods/old.in.yaml', [inject]), false);
  assert.equal(isReferenced('pods/policy.yaml', ["readYaml('pods/policy.yaml')"]), true);
  assert.equal(isReferenced('extra.json', [inject]), false);
});
