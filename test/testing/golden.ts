// The one golden-file convention of the suite: a test compares what it renders with a checked-in
// file; `UPDATE_GOLDEN=1` rewrites the file instead (review the diff before committing). Each
// golden directory is owned by one test file, which ends with `assertNoStrayFiles()` so a file
// that no test reads any more (a renamed or removed case) fails the suite instead of rotting.
import assert from 'node:assert/strict';
import { mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

/** `UPDATE_GOLDEN=1`: rewrite golden files instead of comparing. */
export const updateGolden = process.env.UPDATE_GOLDEN === '1';

const repoRoot = join(import.meta.dirname, '..', '..');

export interface GoldenDir {
  readonly dir: string;
  /** Reads an input file of this directory (counted as used). */
  read(name: string): string;
  /** Compares `actual` with the golden file `name` (or writes it under UPDATE_GOLDEN=1). */
  check(name: string, actual: string): void;
  /** Names (relative to the directory) read or checked so far. */
  used(): ReadonlySet<string>;
  /**
   * Fails when a file of the directory (matching `include`, if given) was neither read nor
   * checked: call it after every case ran.
   */
  assertNoStrayFiles(include?: (name: string) => boolean): void;
}

function listFiles(dir: string, prefix = ''): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(dir).sort()) {
    const path = join(dir, entry);
    if (statSync(path).isDirectory()) out.push(...listFiles(path, `${prefix}${entry}/`));
    else out.push(`${prefix}${entry}`);
  }
  return out;
}

/** A golden directory: a path, or a URL such as `new URL('./testdata/', import.meta.url)`. */
export function goldenDir(where: string | URL): GoldenDir {
  const dir = typeof where === 'string' ? where : fileURLToPath(where);
  const shown = relative(repoRoot, dir) || '.';
  const seen = new Set<string>();
  return {
    dir,
    read(name) {
      seen.add(name);
      return readFileSync(join(dir, name), 'utf8');
    },
    check(name, actual) {
      seen.add(name);
      const file = join(dir, name);
      if (updateGolden) {
        mkdirSync(dirname(file), { recursive: true });
        writeFileSync(file, actual);
        return;
      }
      let expected: string;
      try {
        expected = readFileSync(file, 'utf8');
      } catch {
        throw new Error(`golden file ${shown}/${name} is missing: run with UPDATE_GOLDEN=1 to create it`);
      }
      assert.equal(actual, expected, `output differs from ${shown}/${name} (UPDATE_GOLDEN=1 to accept)`);
    },
    used: () => seen,
    assertNoStrayFiles(include = () => true) {
      const stray = listFiles(dir).filter((name) => include(name) && !seen.has(name));
      assert.deepEqual(
        stray,
        [],
        `files in ${shown} that no test reads: delete them or add the case that uses them`,
      );
    },
  };
}
