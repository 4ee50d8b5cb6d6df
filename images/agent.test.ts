// The test agent image (`chaperone/agent`, images/build.ts) holds working clients: its layers,
// unpacked as a runtime would stack them, run psql, ssh, scp, sftp, curl, kubectl and busybox's sh
// as the image's non-root user, so every library they need is in the image. Reads the build that
// `make images` wrote (CHAPERONE_IMAGES_DIR or ~/.cache/chaperone/images/chaperone); skips without it.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';

const exec = promisify(execFile);
const out =
  process.env.CHAPERONE_IMAGES_DIR ??
  join(process.env.CHAPERONE_CACHE ?? join(homedir(), '.cache', 'chaperone'), 'images', 'chaperone');
const layout = join(out, 'chaperone.oci');

interface Index {
  manifests: { digest: string; annotations: Record<string, string> }[];
}
const index = existsSync(join(layout, 'index.json'))
  ? (JSON.parse(readFileSync(join(layout, 'index.json'), 'utf8')) as Index)
  : undefined;
const agent = index?.manifests.find((m) => m.annotations['org.opencontainers.image.ref.name'] === 'agent');
const blob = (digest: string) => join(layout, 'blobs', 'sha256', digest.replace(/^sha256:/, ''));

test('the agent image runs psql, ssh, scp, sftp, curl and kubectl as its non-root user', {
  skip: agent ? false : `no agent image in ${layout} (make images)`,
}, async () => {
  const manifest = JSON.parse(readFileSync(blob(agent!.digest), 'utf8')) as {
    config: { digest: string };
    layers: { digest: string }[];
  };
  const config = JSON.parse(readFileSync(blob(manifest.config.digest), 'utf8')) as {
    config: { User: string; Entrypoint: string[]; Env: string[] };
  };
  assert.equal(config.config.User, '65532:65532');
  assert.deepEqual(config.config.Entrypoint, ['/bin/sh']);
  const root = await mkdtemp(join(tmpdir(), 'chaperone-agent-image-'));
  try {
    for (const l of manifest.layers) await exec('tar', ['-xzf', blob(l.digest), '-C', root]);
    // What a runtime provides: /dev/null (ssh opens it).
    await mkdir(join(root, 'dev'), { recursive: true });
    await exec('cp', ['-a', '/dev/null', join(root, 'dev', 'null')]);
    const script = [
      'psql --version',
      'ssh -V 2>&1',
      'scp 2>&1 | head -1',
      'sftp -h 2>&1 | head -1',
      'curl --version | head -1',
      'kubectl version --client | head -1',
      'id -u',
    ].join('; ');
    const { stdout } = await exec('chroot', ['--userspec=65532:65532', root, '/bin/sh', '-c', script], {
      env: Object.fromEntries(config.config.Env.map((e) => e.split(/=(.*)/s).slice(0, 2))),
    });
    assert.match(stdout, /^psql \(PostgreSQL\) 15\./m);
    assert.match(stdout, /^OpenSSH_9/m);
    assert.match(stdout, /^usage: scp /m);
    assert.match(stdout, /^usage: sftp /m);
    assert.match(stdout, /^curl 7\.\d+\.\d+ .*OpenSSL/m);
    assert.match(stdout, /^Client Version: v1\.34\./m);
    assert.match(stdout, /^65532$/m);
  } finally {
    await rm(root, { recursive: true, force: true });
  }
});
