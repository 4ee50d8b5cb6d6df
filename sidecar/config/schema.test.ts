import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { DEFAULT_SPOOL_LIMIT_BYTES, generateSigningKey, openRecorder } from '../../recording/index.ts';
import { sidecarConfigSchema } from './index.ts';

const minimal = {
  apiVersion: 'chaperone.dev/sidecar-v1',
  policy: { name: 'p' },
  targets: [{ name: 'db', protocol: 'postgres', upstream: { host: 'db', port: 5432 }, listenPort: 15432 }],
  recording: { store: { url: 'file:///tmp/x' }, signingKeyFile: '/k', spoolDir: '/s' },
};

describe('sidecar config defaults', () => {
  it('bounds the spool with the recorder’s own default, 512 MiB', async () => {
    const config = sidecarConfigSchema.parse(minimal);
    assert.equal(DEFAULT_SPOOL_LIMIT_BYTES, 512 * 1024 * 1024);
    assert.equal(config.recording.spoolLimitBytes, DEFAULT_SPOOL_LIMIT_BYTES);
    // A recorder opened without the option (a standalone user of recording/) agrees.
    const dir = await mkdtemp(join(tmpdir(), 'chaperone-config-'));
    after(() => rm(dir, { recursive: true, force: true }));
    const recorder = await openRecorder({
      spoolDir: join(dir, 'spool'),
      store: `file://${join(dir, 'store')}`,
      signingKey: generateSigningKey().privateKeyPem,
    });
    try {
      assert.equal(recorder.status().spoolLimitBytes, config.recording.spoolLimitBytes);
    } finally {
      await recorder.close();
    }
  });
});
