// The e2e twin of `make demo`: the same story on the real node (env part `node`), where `make demo`
// runs it on a cluster of its own. Runs only with the node part and Chaperone's images.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { testEnv } from '../env/index.ts';
import { clusterExclusiveSkip } from '../testing/exclusive.ts';
import { runDemo } from './demo-story.ts';

const skip = clusterExclusiveSkip();

test('make demo story: helm install from the registry, injected agent Job, masked card, blocked DROP, no direct route, verified recording', {
  skip,
}, async (t) => {
  const env = await testEnv(['kube', 'node', 'minio', 'postgres']);
  if (!env.node.chaperoneImages.webhook) return t.skip('no Chaperone images: run `make images`');
  const workDir = await mkdtemp(join(tmpdir(), 'chaperone-e2e-'));
  after(() => rm(workDir, { recursive: true, force: true }));
  let output = '';
  const report = await runDemo({
    env,
    print: (text) => {
      output += text;
    },
    workDir,
  }).catch((error: Error) => {
    throw new Error(`${error.message}\n--- demo output ---\n${output}`);
  });
  assert.equal(report.sessionIds.length, 3);
  assert.match(report.agent.query ?? '', /Ada Lovelace/);
  assert.doesNotMatch(report.agent.card ?? '', /4111/);
  assert.match(report.agent.drop ?? '', /not allowed/);
  assert.match(report.auditor.cat, /DROP TABLE customers/);
  // Numbered steps a newcomer can follow, and the cleanup step last.
  assert.match(output, /^1\. A local cluster/m);
  assert.match(output, /^\d+\. Install Chaperone with helm from the registry$/m);
  assert.match(output, /^\d+\. Clean up/m);
  assert.match(output, /no webhook configuration left/);
});
