// The e2e twin of `make demo`: the same story on the shared test environment, with names suffixed so
// it can share the apiserver with other test files.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { testEnv } from '../env/index.ts';
import { runDemo } from './demo-story.ts';

const root = process.getuid?.() === 0;

test('make demo story: injected agent pod, masked card, blocked DROP, no direct route, verified recording', {
  skip: root ? false : 'needs root for network namespaces and iptables',
}, async () => {
  const { kube, minio, postgres } = await testEnv(['kube', 'minio', 'postgres']);
  const workDir = await mkdtemp(join(tmpdir(), 'chaperone-e2e-'));
  after(() => rm(workDir, { recursive: true, force: true }));
  let output = '';
  const report = await runDemo({
    env: { kube, minio, postgres },
    print: (text) => {
      output += text;
    },
    workDir,
    subnet: 201,
    isolated: true,
  }).catch((error: Error) => {
    throw new Error(`${error.message}\n--- demo output ---\n${output}`);
  });
  assert.ok(report.sessionIds.length >= 3, `sessions recorded: ${report.sessionIds.length}`);
  assert.match(report.agent.query ?? '', /Ada Lovelace/);
  assert.doesNotMatch(report.agent.card ?? '', /4111/);
  assert.match(report.agent.drop ?? '', /not allowed/);
  assert.match(report.auditor.verify, /ok|valid|verified/i);
  assert.match(report.auditor.cat, /DROP TABLE customers/);
});
