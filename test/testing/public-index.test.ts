// A module uses another only through its public index: production code in one top-level folder
// (a deployable or a build tool) imports another folder's `index.ts` (or a sub-folder's, such as the
// sidecar's config schema), never a file behind it, so a
// folder's insides can move without breaking its users. Tests, test helpers and benches may reach
// in (they test the insides). The few build-tool imports of leaf files are listed with the reason.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { dirname, join, normalize } from 'node:path';
import { test } from 'node:test';

const root = join(import.meta.dirname, '..', '..');

/** importer -> imported file -> why an index import would not do. */
const ALLOWED: Record<string, Record<string, string>> = {
  'images/build.ts': {
    'sidecar/entrypoint.ts':
      "the image's entrypoint bakes in the sidecar's Node flags; sidecar/index.ts would load every gateway (and libpg_query's WebAssembly) into the build script",
  },
  'release/build.ts': {
    'cli/serve/assets.ts': "the release embeds the viewer's assets; cli/index.ts would load the whole CLI",
  },
  'charts/schema/generate.ts': {
    'crds/generate.ts':
      'a generator reusing the CRD generator; crds/index.ts is the API schema, not its tooling',
  },
};

const IMPORT = /(?:^|\n)\s*(?:import|export)\b[^'"]*?\bfrom\s+['"](\.{1,2}\/[^'"]+)['"]/g;

function productionFiles(): string[] {
  const out = execFileSync('git', ['ls-files', '--', '*.ts'], { cwd: root, encoding: 'utf8' });
  return out
    .split('\n')
    .filter((f) => f !== '' && f.includes('/'))
    .filter((f) => !f.endsWith('.test.ts') && !/(^|\/)testing\//.test(f))
    .filter((f) => !/^(test|bench|\.ci|scripts)\//.test(f));
}

/** Every relative import of a file that lands in another top-level folder, not on its index. */
export function reachesInside(file: string, source: string): string[] {
  const top = file.split('/')[0];
  const found: string[] = [];
  for (const m of source.matchAll(IMPORT)) {
    const target = normalize(join(dirname(file), m[1]!));
    const targetTop = target.split('/')[0];
    // Root files (package.json) belong to no folder; a sub-folder's index (sidecar/config/) is a
    // public face of its own.
    if (targetTop === top || target.startsWith('..') || !target.includes('/')) continue;
    if (target.endsWith('/index.ts')) continue;
    found.push(target);
  }
  return found;
}

test('the check itself sees an import behind an index and lets an index import pass', () => {
  const src =
    "import { a } from '../recording/layout.ts';\nimport type { B } from '../recording/index.ts';\n";
  assert.deepEqual(reachesInside('cli/x.ts', src), ['recording/layout.ts']);
  assert.deepEqual(reachesInside('cli/serve/x.ts', "export { c } from '../../crds/schema/common.ts';"), [
    'crds/schema/common.ts',
  ]);
  assert.deepEqual(reachesInside('cli/x.ts', "import { d } from './format.ts';"), []);
});

test('production code reaches other folders only through their public index', () => {
  const offences: string[] = [];
  const used = new Set<string>();
  for (const file of productionFiles()) {
    for (const target of reachesInside(file, readFileSync(join(root, file), 'utf8'))) {
      if (ALLOWED[file]?.[target]) {
        used.add(`${file} -> ${target}`);
        continue;
      }
      offences.push(`${file} imports ${target}`);
    }
  }
  assert.deepEqual(offences, [], 'import the folder’s index.ts (export what is needed there)');
  const stale = Object.entries(ALLOWED).flatMap(([f, t]) =>
    Object.keys(t)
      .map((x) => `${f} -> ${x}`)
      .filter((k) => !used.has(k)),
  );
  assert.deepEqual(stale, [], 'allowed imports no longer made: remove them from ALLOWED');
});
