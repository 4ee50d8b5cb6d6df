// Which build this is: the release script bakes version and git revision into the bundle
// (esbuild define); run from a source checkout, the version comes from package.json and the
// revision from git.
import { execFileSync } from 'node:child_process';
import pkg from '../package.json' with { type: 'json' };

declare const __CHAPERONE_BUILD__: { version: string; revision: string } | undefined;

export interface BuildInfo {
  version: string;
  revision: string;
  /** `release` for a built bundle or executable, `source` when run from a checkout. */
  build: 'release' | 'source';
  node: string;
}

function sourceRevision(): string {
  try {
    const dir = import.meta.dirname;
    const rev = execFileSync('git', ['rev-parse', '--short=12', 'HEAD'], {
      cwd: dir,
      encoding: 'utf8',
    }).trim();
    const dirty = execFileSync('git', ['status', '--porcelain', '--untracked-files=no'], {
      cwd: dir,
      encoding: 'utf8',
    }).trim();
    return dirty ? `${rev}-dirty` : rev;
  } catch {
    return 'unknown';
  }
}

export function buildInfo(): BuildInfo {
  if (typeof __CHAPERONE_BUILD__ !== 'undefined')
    return { ...__CHAPERONE_BUILD__, build: 'release', node: process.version } as BuildInfo;
  return { version: pkg.version, revision: sourceRevision(), build: 'source', node: process.version };
}

export function versionLine(program: string): string {
  const b = buildInfo();
  return `${program} ${b.version} (revision ${b.revision}, ${b.build} build, node ${b.node})`;
}
