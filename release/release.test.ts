// The release artefacts work where users run them: the single executable (built once per run, and
// reused from the cache when its inputs did not change) runs `verify` and `sessions ls` against
// MinIO with no node on PATH, and as kubectl-chaperone is the plugin; the linux-arm64 executable is
// an AArch64 ELF; SHA256SUMS matches the files; the `npm pack` tarball installs into an empty prefix
// (no registry needed: the bundle carries every dependency) and both bins run, also through npx;
// both serve the web viewer's assets (SEA assets in the executable, files beside the npm bundle).
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { parse } from 'yaml';
import { ASSET_TYPES, assetSources } from '../cli/serve/assets.ts';
import { generateSigningKey, openRecorder } from '../recording/index.ts';
import { s3OptionsFor, s3UrlFor, sampleHeader, sqlEvents } from '../recording/testing/fixtures.ts';
import { testEnv } from '../test/env/index.ts';
import { type RunResult, runProcess } from '../test/testing/run-process.ts';
import { type Artefacts, defaultOptions, ELF_MACHINE, elfMachine, release, sha256File } from './build.ts';

const env = await testEnv(['minio']);
const exec = promisify(execFile);

type Ran = RunResult;

function run(file: string, args: string[], envVars: NodeJS.ProcessEnv, argv0?: string): Promise<Ran> {
  return runProcess(file, args, { env: envVars, timeoutMs: 10 * 60_000, ...(argv0 ? { argv0 } : {}) });
}

/**
 * Starts `serve` from `file` on a free loopback port, fetches every /assets/<name> and checks status,
 * type and bytes against the checkout's files, then stops it with SIGTERM (exit 0).
 */
async function servesAssets(file: string, args: string[], envVars: NodeJS.ProcessEnv): Promise<void> {
  const child = spawn(file, ['serve', ...args, '--listen', '127.0.0.1:0'], {
    env: { ...envVars, CHAPERONE_VIEWER_TOKEN: 'release-test-viewer-token' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  const exited = new Promise<number | null>((resolve) => child.on('close', resolve));
  try {
    const base = await new Promise<string>((resolve, reject) => {
      child.stdout.on('data', (d: Buffer) => {
        stdout += d.toString();
        const m = /chaperone viewer on (http:\/\/127\.0\.0\.1:\d+)/.exec(stdout);
        if (m) resolve(m[1]!);
      });
      void exited.then((code) => reject(new Error(`serve exited ${code} before listening: ${stderr}`)));
    });
    for (const [name, source] of assetSources()) {
      const res = await fetch(`${base}/assets/${name}`);
      assert.equal(res.status, 200, name);
      assert.equal(res.headers.get('content-type')?.split(';')[0], ASSET_TYPES[name], name);
      assert.ok(Buffer.from(await res.arrayBuffer()).equals(await readFile(source)), `${name}: same bytes`);
    }
    assert.equal((await fetch(`${base}/assets/nope.js`)).status, 404);
  } finally {
    child.kill('SIGTERM');
  }
  assert.equal(await exited, 0, stderr);
}

describe('release artefacts', { timeout: 600_000 }, () => {
  let dir: string;
  let built: Artefacts;
  let emptyBin: string;
  let s3Url: string;
  let publicKey: string;
  let sessionId: string;
  let awsEnv: NodeJS.ProcessEnv;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'chaperone-release-'));
    // Built once for the whole file; the executables come from the cache when blob and node are unchanged.
    built = await release({ ...defaultOptions(), outDir: join(dir, 'dist'), log: () => undefined });
    emptyBin = join(dir, 'empty-bin');
    await mkdir(emptyBin);

    const key = generateSigningKey();
    publicKey = join(dir, 'signing.pub');
    await writeFile(publicKey, key.publicKeyPem);
    s3Url = s3UrlFor(env.minio, `release-${Date.now()}`);
    const rec = await openRecorder({
      spoolDir: join(dir, 'spool'),
      store: s3Url,
      s3: s3OptionsFor(env.minio),
      signingKey: key.privateKeyPem,
    });
    const s = await rec.startSession(
      sampleHeader({ identity: { pod: 'etl-1', subject: 'alice', namespace: 'team-a' } }),
    );
    for (let i = 0; i < 5; i++) for (const e of sqlEvents(i)) await s.append(e);
    await s.end({ reason: 'client closed' });
    await rec.close({ deadlineMs: 60_000 });
    sessionId = s.sessionId;
    awsEnv = {
      AWS_ENDPOINT_URL: env.minio.endpoint,
      AWS_REGION: env.minio.region,
      AWS_ACCESS_KEY_ID: env.minio.accessKeyId,
      AWS_SECRET_ACCESS_KEY: env.minio.secretAccessKey,
    };
  });

  after(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('SHA256SUMS lists every artefact with its hash; each executable is an ELF of its architecture', async () => {
    const lines = (await readFile(built.checksums, 'utf8')).trim().split('\n');
    const listed = new Map(lines.map((l) => l.split(/ {2}/) as [string, string]).map(([h, f]) => [f, h]));
    assert.deepEqual([...listed.keys()].sort(), [
      'chaperone-dev-chaperone-0.1.0.tgz',
      'chaperone-linux-arm64',
      'chaperone-linux-x64',
      'kubectl-chaperone-linux-arm64.tar.gz',
      'kubectl-chaperone-linux-x64.tar.gz',
    ]);
    for (const [file, hash] of listed) assert.equal(await sha256File(join(dir, 'dist', file)), hash, file);
    assert.equal(await elfMachine(built.executables.x64!), ELF_MACHINE.x64);
    assert.equal(await elfMachine(built.executables.arm64!), ELF_MACHINE.arm64);
    const manifest = parse(await readFile(built.krewManifest!, 'utf8')) as {
      spec: { version: string; platforms: { uri: string; sha256: string; bin: string }[] };
    };
    assert.equal(manifest.spec.version, `v${built.version}`);
    assert.deepEqual(
      manifest.spec.platforms.map((p) => [basename(p.uri), p.sha256, p.bin]),
      ['kubectl-chaperone-linux-x64.tar.gz', 'kubectl-chaperone-linux-arm64.tar.gz'].map((f) => [
        f,
        listed.get(f),
        'kubectl-chaperone',
      ]),
    );
    const { stdout } = await exec('tar', ['-tzf', built.krew.arm64!]);
    assert.deepEqual(stdout.trim().split('\n').sort(), ['LICENSE', 'kubectl-chaperone']);
  });

  it('a second build with unchanged inputs reuses the executables from the cache, byte for byte', async () => {
    const again = await release({
      ...defaultOptions(),
      outDir: join(dir, 'again'),
      npm: false,
      log: () => undefined,
    });
    assert.deepEqual(again.reused.sort(), ['arm64', 'x64']);
    for (const arch of ['x64', 'arm64'] as const)
      assert.equal(await sha256File(again.executables[arch]!), await sha256File(built.executables[arch]!));
  });

  it('the single executable runs version, sessions ls and verify with no node on PATH', async () => {
    const scrubbed = { PATH: emptyBin, HOME: dir };
    await assert.rejects(exec('node', ['--version'], { env: scrubbed }), 'no node reachable on this PATH');
    const exe = built.executables.x64!;
    const version = await run(exe, ['version'], scrubbed);
    assert.equal(version.code, 0, version.stderr);
    assert.match(
      version.stdout,
      new RegExp(`^chaperone ${built.version} \\(revision ${built.revision}, release build, node v24\\.`),
    );
    const revision = (
      await exec('git', ['rev-parse', '--short=12', 'HEAD'], { cwd: import.meta.dirname })
    ).stdout.trim();
    assert.ok(built.revision.startsWith(revision), `${built.revision} is HEAD ${revision}`);

    const ls = await run(exe, ['sessions', 'ls', '--store', s3Url, '--json'], { ...scrubbed, ...awsEnv });
    assert.equal(ls.code, 0, ls.stderr);
    const listed = ls.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { sessionId: string; pod: string });
    assert.deepEqual(
      listed.map((s) => [s.sessionId, s.pod]),
      [[sessionId, 'etl-1']],
    );

    const verify = await run(exe, ['verify', sessionId, '--store', s3Url, '--public-key', publicKey], {
      ...scrubbed,
      ...awsEnv,
    });
    assert.equal(verify.code, 0, verify.stderr);
    assert.match(verify.stdout, new RegExp(`^OK +${sessionId} `));

    const wrongKey = join(dir, 'other.pub');
    await writeFile(wrongKey, generateSigningKey().publicKeyPem);
    const refused = await run(exe, ['verify', sessionId, '--store', s3Url, '--public-key', wrongKey], {
      ...scrubbed,
      ...awsEnv,
    });
    assert.equal(refused.code, 3, 'a session signed by another key fails verification');
  });

  it('the single executable serves the web viewer with its assets, with no node on PATH', async () => {
    await servesAssets(built.executables.x64!, ['--store', s3Url, '--public-key', publicKey], {
      PATH: emptyBin,
      HOME: dir,
      ...awsEnv,
    });
  });

  it('named kubectl-chaperone, the same executable is the kubectl plugin', async () => {
    const link = join(dir, 'plugin-bin', 'kubectl-chaperone');
    await mkdir(join(dir, 'plugin-bin'));
    await symlink(built.executables.x64!, link);
    const r = await run(link, ['version'], { PATH: emptyBin });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^kubectl-chaperone \d/);
    const help = await run(link, ['--help'], { PATH: emptyBin });
    assert.match(help.stdout, /approvals \[options\]/);
  });

  it('the npm tarball installs into an empty prefix offline and both bins run, also through npx; serve has its assets', async () => {
    const prefix = join(dir, 'prefix');
    const npmEnv = {
      ...process.env,
      npm_config_cache: join(dir, 'npm-cache'),
      npm_config_update_notifier: 'false',
    };
    await exec(
      'npm',
      ['install', '-g', '--offline', '--no-audit', '--no-fund', '--prefix', prefix, built.npmTarball!],
      {
        env: npmEnv,
      },
    );
    const pathWithNode = {
      PATH: `${join(prefix, 'bin')}:${join(process.execPath, '..')}`,
      HOME: dir,
      ...awsEnv,
    };
    const cli = await run(
      join(prefix, 'bin', 'chaperone'),
      ['sessions', 'ls', '--store', s3Url],
      pathWithNode,
    );
    assert.equal(cli.code, 0, cli.stderr);
    assert.ok(cli.stdout.includes(sessionId));
    await servesAssets(
      join(prefix, 'bin', 'chaperone'),
      ['--store', s3Url, '--public-key', publicKey],
      pathWithNode,
    );
    const plugin = await run(join(prefix, 'bin', 'kubectl-chaperone'), ['version'], pathWithNode);
    assert.match(plugin.stdout, /^kubectl-chaperone \d.* release build/);

    const npx = await exec(
      'npm',
      ['exec', '--offline', '--yes', `--package=${built.npmTarball}`, '--', 'chaperone', 'version'],
      {
        env: npmEnv,
        cwd: dir,
      },
    );
    assert.match(npx.stdout, new RegExp(`^chaperone ${built.version} \\(revision ${built.revision}`));
  });
});
