// The real node leaves the host as it found it: after stop, no iptables chain, cgroup, process,
// mount or sysctl of its own remains, so the next run starts clean. Runs on its own (it starts and
// stops a node itself), only when the node part is asked for and no shared node is running.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { test } from 'node:test';
import { promisify } from 'node:util';
import { ENV_FILE_VARIABLE, startEnv } from './index.ts';

const exec = promisify(execFile);
const wanted = (process.env.CHAPERONE_TEST_ENV_PARTS ?? '').split(',').map((p) => p.trim());
const sharedNode = process.env[ENV_FILE_VARIABLE]
  ? 'node' in JSON.parse(readFileSync(process.env[ENV_FILE_VARIABLE], 'utf8'))
  : false;
const skip = !wanted.includes('node')
  ? 'the real node runs only with CHAPERONE_TEST_ENV_PARTS=...,node'
  : sharedNode
    ? 'a shared node runs (run this file without the global setup: make node-test does)'
    : false;

const sysctls = ['net.ipv4.ip_forward', 'vm.overcommit_memory', 'kernel.panic', 'kernel.panic_on_oops'];

async function hostState() {
  const chains = (await exec('iptables-save')).stdout
    .split('\n')
    .filter((l) => /^:(KUBE-|CNI-|CHAPERONE-NODE-)/.test(l))
    .map((l) => l.split(' ')[0]);
  const values = Object.fromEntries(
    sysctls.map((k) => [k, readFileSync(`/proc/sys/${k.replaceAll('.', '/')}`, 'utf8').trim()]),
  );
  const mounts = readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .filter((l) => l.includes('/chaperone-env-') && l.includes('/node/')).length;
  const cgroup =
    existsSync('/sys/fs/cgroup/cpu/chaperone-node') || existsSync('/sys/fs/cgroup/chaperone-node');
  return { chains, values, mounts, cgroup };
}

test('a node started and stopped leaves no host changes behind', { skip }, async () => {
  const before = await hostState();
  assert.deepEqual(before.chains, [], 'a node of an earlier run left chains behind');
  const env = await startEnv(['kube', 'node']);
  let during: Awaited<ReturnType<typeof hostState>>;
  try {
    during = await hostState();
  } finally {
    await env.stop();
  }
  // While it ran, it did change the host (so the check after stop means something).
  assert.ok(during.chains.includes(':CHAPERONE-NODE-SAFETY'));
  assert.ok(during.chains.some((c) => c?.startsWith(':KUBE-')));
  assert.equal(during.cgroup, true);
  const after = await hostState();
  assert.deepEqual(after, before);
  const leftovers = (await exec('pgrep', ['-f', `${env.dir}/`]).catch(() => ({ stdout: '' }))).stdout.trim();
  assert.equal(leftovers, '', `processes of the node still run: ${leftovers}`);
});
