// The node's small images (pause, busybox) are OCI archives written by tools/build-node-images.sh:
// byte-for-byte reproducible, and shaped the way containerd imports them.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';

const exec = promisify(execFile);
const script = new URL('./tools/build-node-images.sh', import.meta.url).pathname;
const skip =
  existsSync('/bin/busybox') && existsSync('/usr/bin/gcc') ? false : 'needs busybox-static and gcc';

async function build(): Promise<{ dir: string; archives: string[] }> {
  const dir = await mkdtemp(join(tmpdir(), 'chaperone-node-images-'));
  const { stdout } = await exec(script, [dir]);
  return { dir, archives: stdout.trim().split('\n') };
}

test('two builds of the node images give the same bytes, named for containerd', { skip }, async () => {
  const [a, b] = [await build(), await build()];
  try {
    assert.equal(a.archives.length, 2);
    for (const [i, archive] of a.archives.entries()) {
      const [ha, hb] = await Promise.all(
        [archive, b.archives[i]!].map(async (f) => (await exec('sha256sum', [f])).stdout.split(' ')[0]),
      );
      assert.equal(ha, hb, `${archive} is not reproducible`);
      const index = JSON.parse((await exec('tar', ['-xOf', archive, 'index.json'])).stdout) as {
        manifests: { digest: string; annotations: Record<string, string> }[];
      };
      assert.match(
        index.manifests[0]?.annotations['io.containerd.image.name'] ?? '',
        /^localhost\/chaperone\/(pause|busybox):/,
      );
      // The manifest blob is where the index says, and its digest is its content's.
      const digest = index.manifests[0]!.digest.replace('sha256:', '');
      const manifest = (await exec('tar', ['-xOf', archive, `blobs/sha256/${digest}`])).stdout;
      assert.equal(createHash('sha256').update(manifest).digest('hex'), digest);
    }
    assert.ok((await readFile(a.archives[0]!)).length > 0);
  } finally {
    await Promise.all([
      rm(a.dir, { recursive: true, force: true }),
      rm(b.dir, { recursive: true, force: true }),
    ]);
  }
});
