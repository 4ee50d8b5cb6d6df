// No fixed sleep decides a test's outcome: in test code, a sleep may only be the pause of a
// wait-until loop (a `for`/`while` around it, with an explicit condition), or of the shared poller
// test/testing/until.ts. Anything else must wait for the event itself. The few sleeps that wait for
// the real clock on purpose are listed below with the reason.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';

const root = join(import.meta.dirname, '..', '..');

/** A sleep: `await sleep(…)`/`delay(…)`, or a promise resolved by a bare setTimeout. */
const SLEEP = [
  /\bawait\s+(?:sleep|delay)\(/,
  /new Promise(?:<void>)?\(\s*\(?(\w+)\)?\s*=>\s*setTimeout\(\s*\1\s*,/,
];

/** Sleeps allowed outside a loop: file -> text on the line -> why. */
const ALLOWED: Record<string, Record<string, string>> = {
  'sidecar/identity/oidc.test.ts': {
    'exp * 1000 - Date.now()':
      'waits until a real token from the real provider has expired (the verifier reads the real clock)',
  },
  'sidecar/postgres/tokens.test.ts': {
    'CLOCK_SKEW_SECONDS + 1':
      'waits until a real token has expired past the allowed skew (the gateway reads the real clock)',
  },
  'sidecar/postgres/robustness.test.ts': {
    'setTimeout(r, 100)':
      'lets a cut frame reach the sidecar as its own read; the outcome is checked from the log',
  },
};

const SELF = new Set(['test/testing/until.ts', 'test/testing/no-fixed-sleep.test.ts']);

function testCodeFiles(): string[] {
  const out = execFileSync('git', ['ls-files', '--', '*.ts'], { cwd: root, encoding: 'utf8' });
  return out
    .split('\n')
    .filter((f) => f !== '' && !SELF.has(f))
    .filter(
      (f) =>
        f.endsWith('.test.ts') ||
        /(^|\/)(testing|test-support)(\/|\.ts$)/.test(f) ||
        f.endsWith('.testkit.ts') ||
        f.startsWith('test/'),
    );
}

const indent = (line: string) => line.length - line.trimStart().length;
const LOOP = /^\s*(?:for|while)\s*\(|^\s*do\s*\{|^\s*\}\s*while\s*\(/;
const FUNCTION = /=>\s*\{\s*$|\bfunction\b|^\s*(?:async\s+)?[#\w]+\s*\([^)]*\)\s*(?::[^{]*)?\{\s*$/;

/** Is line `at` inside a loop of its own function (walking out through enclosing blocks)? */
function insideLoop(lines: string[], at: number): boolean {
  let level = indent(lines[at]!);
  for (let i = at - 1; i >= 0 && level > 0; i--) {
    const line = lines[i]!;
    if (line.trim() === '' || indent(line) >= level) continue;
    level = indent(line);
    if (LOOP.test(line)) return true;
    if (FUNCTION.test(line)) return false;
  }
  return false;
}

export function fixedSleeps(files: string[], read: (file: string) => string): string[] {
  const found: string[] = [];
  for (const file of files) {
    const lines = read(file).split('\n');
    lines.forEach((line, i) => {
      if (!SLEEP.some((re) => re.test(line))) return;
      if (insideLoop(lines, i)) return;
      const allowed = Object.keys(ALLOWED[file] ?? {}).some((text) => line.includes(text));
      if (!allowed) found.push(`${file}:${i + 1}: ${line.trim()}`);
    });
  }
  return found;
}

test('no fixed sleep decides a test outcome (sleeps only inside wait-until loops)', () => {
  const files = testCodeFiles();
  assert.ok(files.length > 50, `found only ${files.length} test files`);
  assert.deepEqual(
    fixedSleeps(files, (f) => readFileSync(join(root, f), 'utf8')),
    [],
    'wait for the event itself (test/testing/until.ts), or list the sleep in ALLOWED with the reason',
  );
});

test('the sleep check sees a bare sleep and accepts a polling loop', () => {
  const sources: Record<string, string> = {
    'a.test.ts': "it('x', async () => {\n  start();\n  await sleep(300);\n  assert.ok(done);\n});\n",
    'b.test.ts':
      "it('x', async () => {\n  while (!done) {\n    await new Promise((r) => setTimeout(r, 20));\n  }\n});\n",
    'c.test.ts': "it('x', async () => {\n  await new Promise((resolve) => setTimeout(resolve, 60));\n});\n",
  };
  assert.deepEqual(
    fixedSleeps(Object.keys(sources), (f) => sources[f]!),
    [
      'a.test.ts:3: await sleep(300);',
      'c.test.ts:2: await new Promise((resolve) => setTimeout(resolve, 60));',
    ],
  );
});

test('every allowed sleep is still there (the list does not rot)', () => {
  for (const [file, entries] of Object.entries(ALLOWED)) {
    const text = readFileSync(join(root, file), 'utf8');
    for (const needle of Object.keys(entries)) assert.ok(text.includes(needle), `${file}: ${needle}`);
  }
});
