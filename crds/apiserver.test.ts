// The generated CRDs in a real kube-apiserver: structural schemas accepted, valid objects stored with
// defaults, invalid ones refused by schema and CEL with clear messages, kubectl explain documented.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { stringify } from 'yaml';
import { testEnv } from '../test/env/index.ts';

const exec = promisify(execFile);
const kube = (await testEnv(['kube'])).kube;
const ns = `crds-${randomBytes(3).toString('hex')}`;
// biome-ignore lint/suspicious/noExplicitAny: the tests walk stored objects
type Json = any;

async function kubectl(args: string[], input?: object): Promise<{ ok: boolean; out: string }> {
  const child = exec(kube.kubectl, ['--kubeconfig', kube.kubeconfigPath, ...args], { maxBuffer: 16 << 20 });
  if (input) {
    child.child.stdin!.end(stringify(input));
  }
  try {
    const { stdout, stderr } = await child;
    return { ok: true, out: stdout + stderr };
  } catch (error) {
    const e = error as { stdout?: string; stderr?: string };
    return { ok: false, out: `${e.stdout ?? ''}${e.stderr ?? ''}` };
  }
}

function policy(name: string, spec: Record<string, unknown>) {
  return {
    apiVersion: 'chaperone.dev/v1alpha1',
    kind: 'SessionPolicy',
    metadata: { name, namespace: ns },
    spec,
  };
}

const target = (name: string, listenPort: number, extra: object = {}) => ({
  name,
  protocol: 'postgres',
  upstream: { host: 'db.example', port: 5432 },
  listenPort,
  ...extra,
});
const recording = { store: { url: 's3://bucket/prefix' }, signingKeySecret: { name: 'signing-key' } };

async function refused(input: object, pattern: RegExp): Promise<void> {
  const result = await kubectl(['create', '-f', '-'], input);
  assert.equal(result.ok, false, `expected refusal, got: ${result.out}`);
  assert.match(result.out, pattern);
}

describe('CRDs in kube-apiserver', () => {
  before(async () => {
    const applied = await kubectl([
      'apply',
      '--server-side',
      '--force-conflicts',
      '-f',
      join(import.meta.dirname),
    ]);
    assert.ok(applied.ok, applied.out);
    const established = await kubectl([
      'wait',
      '--for=condition=Established',
      '--timeout=60s',
      'crd/sessionpolicies.chaperone.dev',
      'crd/sessionapprovals.chaperone.dev',
    ]);
    assert.ok(established.ok, established.out);
    assert.ok((await kubectl(['create', 'namespace', ns])).ok);
  });
  after(() => kubectl(['delete', 'namespace', ns, '--wait=false']));

  it('stores a valid SessionPolicy with the defaults zod declares', async () => {
    const created = await kubectl(
      ['create', '-o', 'json', '-f', '-'],
      policy('valid', { targets: [target('db', 15432)], recording }),
    );
    assert.ok(created.ok, created.out);
    const stored = JSON.parse(created.out) as { spec: Record<string, Json> };
    assert.equal(stored.spec.targets[0].transparent, false);
    assert.equal(stored.spec.recording.failMode, 'failClosed');
    assert.equal(stored.spec.recording.segment.maxSeconds, 10);
    assert.equal(stored.spec.identity.tokenRequired, true);
    assert.equal(stored.spec.identity.clockSkewSeconds, 30);
  });

  it('refuses duplicate target names', async () => {
    await refused(
      policy('dup-names', { targets: [target('db', 15432), target('db', 15433)], recording }),
      /spec\.targets\[1\]: Duplicate value/,
    );
  });

  it('refuses duplicate listen ports (CEL)', async () => {
    await refused(
      policy('dup-ports', { targets: [target('a', 15432), target('b', 15432)], recording }),
      /listenPort must be unique across targets/,
    );
  });

  it('refuses a transparent target whose host is a name (CEL)', async () => {
    await refused(
      policy('transparent-name', { targets: [target('db', 15432, { transparent: true })], recording }),
      /spec\.targets\[0\]\.upstream\.host: Invalid value.*transparent targets need an IP address/,
    );
    const ok = await kubectl(
      ['create', '-f', '-'],
      policy('transparent-ip', {
        targets: [target('db', 15432, { transparent: true, upstream: { host: 'fd00::5', port: 5432 } })],
        recording,
      }),
    );
    assert.ok(ok.ok, ok.out);
  });

  it('refuses wrong types, enums, ranges and missing fields with the field path', async () => {
    await refused(
      policy('bad', {
        targets: [target('db', 80, { protocol: 'mysql' })],
        recording: { store: { url: 'gs://x' } },
      }),
      /spec\.targets\[0\]\.protocol: Unsupported value: "mysql"/,
    );
    await refused(
      policy('low-port', { targets: [target('db', 80)], recording }),
      /spec\.targets\[0\]\.listenPort: Invalid value: 80: .*greater than or equal to 1024/,
    );
    await refused(
      policy('no-signing', { targets: [target('db', 15432)], recording: { store: { url: 's3://b' } } }),
      /spec\.recording\.signingKeySecret: Required value/,
    );
    await refused(
      policy('skew', { targets: [target('db', 15432)], identity: { clockSkewSeconds: 301 }, recording }),
      /spec\.identity\.clockSkewSeconds: Invalid value: 301: .*less than or equal to 300/,
    );
    await refused(
      policy('no-targets', { targets: [], recording }),
      /spec\.targets: Invalid value: 0: .*at least 1 items/,
    );
  });

  it('prints Ready, Targets and Age columns', async () => {
    const out = await kubectl(['get', 'sessionpolicies', '-n', ns, 'valid']);
    assert.match(out.out, /NAME\s+READY\s+TARGETS\s+AGE/);
    assert.match(out.out, /valid\s+db\s+/);
  });

  it('kubectl explain shows the descriptions', async () => {
    const out = await kubectl(['explain', 'sessionpolicy.spec.targets']);
    assert.ok(out.ok, out.out);
    assert.match(out.out, /Upstreams reached only through the sidecar/);
    assert.match(out.out, /listenPort\s+<integer> -required-/);
    assert.match(out.out, /Port on 127\.0\.0\.1 in the pod where the sidecar accepts the agent/);
  });

  describe('SessionApproval', () => {
    const approval = {
      apiVersion: 'chaperone.dev/v1alpha1',
      kind: 'SessionApproval',
      metadata: { name: 'sess-1-1', namespace: ns },
      spec: {
        sessionId: 'sess-1',
        policy: 'valid',
        rule: 'drops-need-approval',
        target: 'db',
        protocol: 'postgres',
        subject: 'system:serviceaccount:agents:bot',
        statement: 'DROP TABLE invoices',
        expiresAt: '2026-11-23T10:00:00Z',
      },
    };
    const patchStatus = (status: object) =>
      kubectl([
        'patch',
        'sessionapproval',
        '-n',
        ns,
        'sess-1-1',
        '--subresource=status',
        '--type=merge',
        '-p',
        JSON.stringify({ status }),
      ]);

    before(async () => {
      const created = await kubectl(['create', '-f', '-'], approval);
      assert.ok(created.ok, created.out);
    });

    it('has an immutable spec', async () => {
      const result = await kubectl([
        'patch',
        'sessionapproval',
        '-n',
        ns,
        'sess-1-1',
        '--type=merge',
        '-p',
        '{"spec":{"statement":"SELECT 1"}}',
      ]);
      assert.equal(result.ok, false);
      assert.match(result.out, /spec is immutable/);
    });

    it('refuses a decision without a stamped approver', async () => {
      const result = await patchStatus({ decision: { approved: true } });
      assert.equal(result.ok, false);
      assert.match(result.out, /approver must be stamped by the chaperone admission webhook/);
    });

    it('keeps a decision final once set', async () => {
      const first = await patchStatus({ phase: 'Approved', decision: { approved: true, approver: 'alice' } });
      assert.ok(first.ok, first.out);
      const phaseOnly = await patchStatus({ phase: 'Approved' });
      assert.ok(phaseOnly.ok, phaseOnly.out);
      const changed = await patchStatus({ decision: { approved: false, approver: 'mallory' } });
      assert.equal(changed.ok, false);
      assert.match(changed.out, /status\.decision is final once set/);
    });

    it('prints Phase, Subject, Rule and Age columns', async () => {
      const out = await kubectl(['get', 'sessionapprovals', '-n', ns]);
      assert.match(out.out, /NAME\s+PHASE\s+SUBJECT\s+RULE\s+AGE/);
      assert.match(out.out, /sess-1-1\s+Approved\s+system:serviceaccount:agents:bot\s+drops-need-approval/);
    });
  });
});
