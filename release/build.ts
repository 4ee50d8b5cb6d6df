// Builds the release artefacts into dist/ (gitignored), called by scripts/release.sh (`make release`):
//  - one CommonJS bundle of both programs (esbuild; version and git revision baked in),
//  - the npm package (bin: chaperone, kubectl-chaperone; no dependencies, the bundle holds them),
//    packed with `npm pack`,
//  - single executables (Node SEA + postject) for linux-x64 and linux-arm64, with krew archives,
//  - SHA256SUMS over all of them.
// The viewer's assets (cli/serve/assets.ts) travel with every artefact that runs the CLI: in
// assets/ next to the bundle (and in the npm package's lib/assets/), and as SEA assets in the
// executables.
// Why a bundle: the sources are TypeScript run with Node's type stripping, which Node refuses under
// node_modules, and a SEA takes one CommonJS script; one esbuild bundle serves both, starts faster
// than 600 files, and carries no install-time dependency resolution.
// SEA blobs are built without code cache or snapshot, so the same blob is valid for both
// architectures; an executable is cached by the hash of (bundled script, node binary) and rebuilt
// only when one changes (the blob itself records the script's path, so it is not the key).
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  chmod,
  copyFile,
  mkdir,
  open,
  readdir,
  readFile,
  rename,
  rm,
  stat,
  writeFile,
} from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { build } from 'esbuild';
import { assetSources } from '../cli/serve/assets.ts';

const run = promisify(execFile);
const ROOT = join(import.meta.dirname, '..');
export const NODE_VERSION = '24.21.0';
/** The sentinel fuse Node's SEA support looks for (documented in Node's single-executable-applications). */
const SEA_FUSE = 'NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2';
export const ARCHES = ['x64', 'arm64'] as const;
export type Arch = (typeof ARCHES)[number];
/** ELF e_machine values. */
export const ELF_MACHINE: Record<Arch, number> = { x64: 62, arm64: 183 };
export const NPM_NAME = '@chaperone-dev/chaperone';

export interface ReleaseOptions {
  outDir: string;
  cacheDir: string;
  arches: readonly Arch[];
  /** Skip the npm package (tests of the executables only). */
  npm: boolean;
  log: (line: string) => void;
}

export interface Artefacts {
  version: string;
  revision: string;
  bundle: string;
  npmTarball?: string;
  executables: Partial<Record<Arch, string>>;
  krew: Partial<Record<Arch, string>>;
  /** dist/krew/chaperone.yaml (when every architecture was built). */
  krewManifest?: string;
  checksums: string;
  /** Executables reused from the cache (no postject run). */
  reused: Arch[];
}

export function defaultOptions(): ReleaseOptions {
  const cache = process.env.CHAPERONE_CACHE ?? join(homedir(), '.cache', 'chaperone');
  return {
    outDir: join(ROOT, 'dist'),
    cacheDir: join(cache, 'release'),
    arches: ARCHES,
    npm: true,
    log: (line) => process.stderr.write(`[release] ${line}\n`),
  };
}

async function git(args: string[]): Promise<string> {
  return (await run('git', args, { cwd: ROOT })).stdout.trim();
}

export async function sourceRevision(): Promise<string> {
  const rev = await git(['rev-parse', '--short=12', 'HEAD']);
  const dirty = await git(['status', '--porcelain', '--untracked-files=no']);
  return dirty ? `${rev}-dirty` : rev;
}

export async function sha256File(file: string): Promise<string> {
  return createHash('sha256')
    .update(await readFile(file))
    .digest('hex');
}

/** e_machine of an ELF file (throws when it is not a 64-bit little-endian ELF). */
export async function elfMachine(file: string): Promise<number> {
  const fh = await open(file, 'r');
  try {
    const header = Buffer.alloc(20);
    await fh.read(header, 0, 20, 0);
    if (header.readUInt32BE(0) !== 0x7f454c46) throw new Error(`${file} is not an ELF file`);
    if (header[4] !== 2 || header[5] !== 1) throw new Error(`${file} is not a 64-bit little-endian ELF`);
    return header.readUInt16LE(18);
  } finally {
    await fh.close();
  }
}

async function exists(file: string): Promise<boolean> {
  return stat(file).then(
    () => true,
    () => false,
  );
}

/** The official Node binary for `arch`, from the npm registry's node-linux-<arch> package. */
export async function nodeBinary(arch: Arch, cacheDir: string): Promise<string> {
  const chaperoneCache = join(cacheDir, '..');
  const ours = join(
    chaperoneCache,
    `node-${NODE_VERSION}`,
    'node_modules',
    `node-linux-${arch}`,
    'bin',
    'node',
  );
  if (arch === 'x64' && process.arch === 'x64' && (await exists(ours))) return ours;
  const prefix = join(cacheDir, `node-${NODE_VERSION}-${arch}`);
  const bin = join(prefix, 'node_modules', `node-linux-${arch}`, 'bin', 'node');
  if (!(await exists(bin))) {
    await mkdir(prefix, { recursive: true });
    // --force: the package declares os/cpu; we want the file, not to run it here.
    await run('npm', [
      'install',
      '--prefix',
      prefix,
      '--no-save',
      '--no-package-lock',
      '--no-audit',
      '--no-fund',
      '--force',
      '--ignore-scripts',
      `node-linux-${arch}@${NODE_VERSION}`,
    ]);
  }
  const machine = await elfMachine(bin);
  if (machine !== ELF_MACHINE[arch])
    throw new Error(`${bin}: ELF machine ${machine}, expected ${ELF_MACHINE[arch]} (${arch})`);
  return bin;
}

async function bundle(outFile: string, entry: string, version: string, revision: string): Promise<void> {
  await build({
    absWorkingDir: ROOT,
    entryPoints: [join(ROOT, entry)],
    outfile: outFile,
    bundle: true,
    platform: 'node',
    target: 'node24',
    format: 'cjs',
    legalComments: 'external',
    define: { __CHAPERONE_BUILD__: JSON.stringify({ version, revision }) },
    // cli/version.ts reads import.meta only when run from source (the define replaces that path).
    logOverride: { 'empty-import-meta': 'silent' },
    logLevel: 'warning',
  });
}

/** Copies the viewer's assets into `dir`/assets (beside a bundle); returns name → copied file. */
async function copyAssets(dir: string): Promise<Record<string, string>> {
  await mkdir(join(dir, 'assets'), { recursive: true });
  const copied: Record<string, string> = {};
  for (const [name, file] of assetSources()) {
    copied[name] = join(dir, 'assets', name);
    await copyFile(file, copied[name]);
  }
  return copied;
}

/** The SEA blob for `script` with `assets` (no code cache, no snapshot: valid for every architecture). */
async function seaBlob(script: string, assets: Record<string, string>, blob: string): Promise<void> {
  const config = `${blob}.json`;
  await writeFile(
    config,
    JSON.stringify({
      main: script,
      output: blob,
      assets,
      disableExperimentalSEAWarning: true,
      useCodeCache: false,
      useSnapshot: false,
    }),
  );
  await run(process.execPath, ['--experimental-sea-config', config]);
}

/** Where the executable for (script, arch, node) is cached: keyed by contents, not paths. */
async function cachedExecutable(
  arch: Arch,
  script: string,
  assets: Record<string, string>,
  opts: ReleaseOptions,
) {
  const node = await nodeBinary(arch, opts.cacheDir);
  const hash = createHash('sha256')
    .update(await sha256File(script))
    .update(await sha256File(node));
  for (const [name, file] of Object.entries(assets).sort())
    hash.update(`${name}\0${await sha256File(file)}\0`);
  const key = hash.digest('hex').slice(0, 24);
  return { node, file: join(opts.cacheDir, 'sea', `chaperone-linux-${arch}-${key}`) };
}

/** Keeps the `keep` most recent cached executables of `arch` (each is a whole Node binary). */
async function pruneCache(arch: Arch, opts: ReleaseOptions, keep = 2): Promise<void> {
  const dir = join(opts.cacheDir, 'sea');
  const prefix = `chaperone-linux-${arch}-`;
  const entries = await Promise.all(
    (await readdir(dir))
      .filter((f) => f.startsWith(prefix) && !f.includes('.tmp-'))
      .map(async (f) => ({ file: join(dir, f), mtime: (await stat(join(dir, f))).mtimeMs })),
  );
  entries.sort((a, b) => b.mtime - a.mtime);
  for (const old of entries.slice(keep)) await rm(old.file, { force: true });
}

async function inject(node: string, blob: string, cached: string, arch: Arch, opts: ReleaseOptions) {
  opts.log(`injecting the SEA blob into node ${NODE_VERSION} linux-${arch}`);
  await mkdir(join(opts.cacheDir, 'sea'), { recursive: true });
  const tmp = `${cached}.tmp-${process.pid}`;
  await copyFile(node, tmp);
  const postject = join(ROOT, 'node_modules', 'postject', 'dist', 'cli.js');
  await run(process.execPath, [postject, tmp, 'NODE_SEA_BLOB', blob, '--sentinel-fuse', SEA_FUSE]);
  await rename(tmp, cached);
}

async function npmPackage(bundleFile: string, version: string, revision: string, opts: ReleaseOptions) {
  const dir = join(opts.outDir, 'npm');
  await rm(dir, { recursive: true, force: true });
  await mkdir(join(dir, 'bin'), { recursive: true });
  await mkdir(join(dir, 'lib'), { recursive: true });
  await copyFile(bundleFile, join(dir, 'lib', 'chaperone.cjs'));
  await copyAssets(join(dir, 'lib'));
  const legal = `${bundleFile}.LEGAL.txt`;
  if (await exists(legal)) await copyFile(legal, join(dir, 'lib', 'THIRD-PARTY-NOTICES.txt'));
  for (const name of ['chaperone', 'kubectl-chaperone']) {
    await writeFile(
      join(dir, 'bin', `${name}.cjs`),
      `#!/usr/bin/env node\n'use strict';\nrequire('../lib/chaperone.cjs').main('${name}');\n`,
      { mode: 0o755 },
    );
  }
  const root = JSON.parse(await readFile(join(ROOT, 'package.json'), 'utf8')) as Record<string, unknown>;
  const pkg = {
    name: NPM_NAME,
    version,
    description: root.description,
    license: root.license,
    engines: { node: (root.engines as { node: string }).node },
    bin: { chaperone: 'bin/chaperone.cjs', 'kubectl-chaperone': 'bin/kubectl-chaperone.cjs' },
    files: ['bin', 'lib', 'README.md'],
    chaperone: { revision },
  };
  await writeFile(join(dir, 'package.json'), `${JSON.stringify(pkg, null, 2)}\n`);
  await copyFile(join(ROOT, 'release', 'npm-README.md'), join(dir, 'README.md'));
  const { stdout } = await run('npm', ['pack', '--json', '--pack-destination', opts.outDir], { cwd: dir });
  const [packed] = JSON.parse(stdout) as { filename: string }[];
  return join(opts.outDir, packed!.filename);
}

/** A krew archive: the executable as kubectl-chaperone plus the licence. */
async function krewArchive(exe: string, arch: Arch, opts: ReleaseOptions): Promise<string> {
  const stage = join(opts.outDir, `krew-${arch}`);
  await rm(stage, { recursive: true, force: true });
  await mkdir(stage, { recursive: true });
  await copyFile(exe, join(stage, 'kubectl-chaperone'));
  await copyFile(join(ROOT, 'release', 'LICENSE-NOTICE.txt'), join(stage, 'LICENSE'));
  const archive = join(opts.outDir, `kubectl-chaperone-linux-${arch}.tar.gz`);
  // Fixed owner and mtime: the archive's checksum depends on the contents only.
  await run('tar', [
    '--sort=name',
    '--owner=0',
    '--group=0',
    '--numeric-owner',
    '--mtime=@0',
    '-czf',
    archive,
    '-C',
    stage,
    'kubectl-chaperone',
    'LICENSE',
  ]);
  await rm(stage, { recursive: true, force: true });
  return archive;
}

/** Default download base of the release archives (the krew manifest's uri). */
export const RELEASE_URL = 'https://github.com/chaperone/chaperone/releases/download';

/** plugins/krew/chaperone.yaml with version, download base and archive hashes filled in. */
export async function renderKrewManifest(
  version: string,
  url: string,
  hashes: Map<string, string>,
): Promise<string> {
  const template = await readFile(join(ROOT, 'plugins', 'krew', 'chaperone.yaml'), 'utf8');
  return template.replace(/\{\{(version|url|sha256 ([^}]+))\}\}/g, (_, what: string, file?: string) => {
    if (what === 'version') return version;
    if (what === 'url') return url;
    const hash = hashes.get(file!);
    if (!hash) throw new Error(`krew manifest names ${file}, which this release did not build`);
    return hash;
  });
}

export async function release(opts: ReleaseOptions): Promise<Artefacts> {
  const version = (JSON.parse(await readFile(join(ROOT, 'package.json'), 'utf8')) as { version: string })
    .version;
  const revision = await sourceRevision();
  await mkdir(opts.outDir, { recursive: true });
  const work = join(opts.outDir, 'work');
  await mkdir(work, { recursive: true });
  opts.log(`chaperone ${version} revision ${revision}`);

  const npmBundle = join(work, 'npm.cjs');
  const seaScript = join(work, 'sea.cjs');
  await Promise.all([
    bundle(npmBundle, 'release/entries/npm.ts', version, revision),
    bundle(seaScript, 'release/entries/sea.ts', version, revision),
  ]);
  const assets = await copyAssets(work);
  const files: string[] = [];
  const artefacts: Artefacts = {
    version,
    revision,
    bundle: npmBundle,
    executables: {},
    krew: {},
    checksums: join(opts.outDir, 'SHA256SUMS'),
    reused: [],
  };
  if (opts.npm) {
    artefacts.npmTarball = await npmPackage(npmBundle, version, revision, opts);
    files.push(artefacts.npmTarball);
  }
  let blob: string | undefined;
  for (const arch of opts.arches) {
    const out = join(opts.outDir, `chaperone-linux-${arch}`);
    const cached = await cachedExecutable(arch, seaScript, assets, opts);
    if (await exists(cached.file)) artefacts.reused.push(arch);
    else {
      if (!blob) {
        blob = join(work, 'sea.blob');
        await seaBlob(seaScript, assets, blob);
      }
      await inject(cached.node, blob, cached.file, arch, opts);
      await pruneCache(arch, opts);
    }
    await copyFile(cached.file, out);
    await chmod(out, 0o755);
    const machine = await elfMachine(out);
    if (machine !== ELF_MACHINE[arch]) throw new Error(`${out}: ELF machine ${machine}, not ${arch}`);
    artefacts.executables[arch] = out;
    artefacts.krew[arch] = await krewArchive(out, arch, opts);
    files.push(out, artefacts.krew[arch]!);
  }
  const sums = await Promise.all(
    files.map(async (f) => `${await sha256File(f)}  ${f.slice(opts.outDir.length + 1)}`),
  );
  await writeFile(artefacts.checksums, `${sums.join('\n')}\n`);
  if (opts.arches.length === ARCHES.length) {
    const hashes = new Map(sums.map((l) => l.split('  ').reverse() as [string, string]));
    const base = `${process.env.CHAPERONE_RELEASE_URL ?? RELEASE_URL}/v${version}`;
    await mkdir(join(opts.outDir, 'krew'), { recursive: true });
    artefacts.krewManifest = join(opts.outDir, 'krew', 'chaperone.yaml');
    await writeFile(artefacts.krewManifest, await renderKrewManifest(version, base, hashes));
  }
  opts.log(`wrote ${files.length} artefacts and ${artefacts.checksums}`);
  return artefacts;
}

if (import.meta.main) {
  const opts = defaultOptions();
  const only = process.env.CHAPERONE_RELEASE_ARCHES;
  if (only !== undefined)
    opts.arches = only.split(',').filter((a): a is Arch => a === 'x64' || a === 'arm64');
  const a = await release(opts);
  process.stdout.write(`${await readFile(a.checksums, 'utf8')}`);
}
