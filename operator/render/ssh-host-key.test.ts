import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';
import ssh2 from 'ssh2';
import { sshHostKeySecretName, sshKnownHostsName } from './labels.ts';
import type { SessionPolicyObject } from './policy.ts';
import {
  hasSshTargets,
  knownHostsLines,
  renderKnownHostsConfigMap,
  renderSshHostKeySecret,
} from './ssh-host-key.ts';

const exec = promisify(execFile);

const policy = {
  apiVersion: 'chaperone.dev/v1alpha1',
  kind: 'SessionPolicy',
  metadata: { name: 'ops', namespace: 'agents', uid: 'uid-1', generation: 2 },
  spec: {},
} as unknown as SessionPolicyObject;

const targets = [
  { name: 'db', protocol: 'postgres', listenPort: 15432 },
  { name: 'bastion', protocol: 'ssh', listenPort: 15022 },
  { name: 'build', protocol: 'ssh', listenPort: 15023 },
] as never;

test('the host key Secret holds an Ed25519 key ssh2 loads, owned by the policy', () => {
  const secret = renderSshHostKeySecret(policy);
  assert.equal(secret.metadata.name, sshHostKeySecretName('ops'));
  assert.equal(secret.metadata.namespace, 'agents');
  assert.equal(secret.metadata.ownerReferences?.[0]?.uid, 'uid-1');
  const key = ssh2.utils.parseKey(secret.stringData.privateKey!);
  assert.ok(!(key instanceof Error));
  assert.equal((key as { type: string }).type, 'ssh-ed25519');
  assert.match(secret.stringData.publicKey!, /^ssh-ed25519 [A-Za-z0-9+/]+=* chaperone-ops$/);
  // Each render is a new key: the operator creates the Secret once and never re-renders it.
  assert.notEqual(renderSshHostKeySecret(policy).stringData.privateKey, secret.stringData.privateKey);
});

test('known_hosts names every ssh listen port on 127.0.0.1 and localhost; OpenSSH finds them', async (t) => {
  const { stringData } = renderSshHostKeySecret(policy);
  assert.equal(hasSshTargets({ targets }), true);
  const lines = knownHostsLines({ targets }, stringData.publicKey!);
  const [type, blob] = stringData.publicKey!.split(' ');
  assert.equal(
    lines,
    `[127.0.0.1]:15022,[localhost]:15022 ${type} ${blob}\n[127.0.0.1]:15023,[localhost]:15023 ${type} ${blob}\n`,
  );
  const cm = renderKnownHostsConfigMap(policy, { targets }, stringData.publicKey!);
  assert.equal(cm.metadata.name, sshKnownHostsName('ops'));
  const dir = await mkdtemp(join(tmpdir(), 'chaperone-kh-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  await writeFile(join(dir, 'known_hosts'), cm.data.known_hosts);
  for (const host of ['[127.0.0.1]:15022', '[localhost]:15023']) {
    const { stdout } = await exec('ssh-keygen', ['-F', host, '-f', join(dir, 'known_hosts')]);
    assert.match(stdout, new RegExp(`ssh-ed25519 ${blob!.replace(/[+/]/g, '\\$&')}`));
  }
  await assert.rejects(exec('ssh-keygen', ['-F', '[127.0.0.1]:15432', '-f', join(dir, 'known_hosts')]));
});
