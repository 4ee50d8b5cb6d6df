// Golden tests of the pure renderers: each testdata/<case>.policy.yaml renders to
// <case>.config.json, <case>.configmap.json and <case>.networkpolicy.json. Run with
// UPDATE_GOLDEN=1 to rewrite the golden files after an intended change; a file in testdata that no
// case uses fails the suite.
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { describe, it } from 'node:test';
import { parse } from 'yaml';
import { sidecarConfigSchema } from '../../sidecar/config/index.ts';
import { goldenDir } from '../../test/testing/golden.ts';
import {
  PolicyInvalidError,
  parseS3Url,
  renderConfigMap,
  renderNetworkPolicy,
  renderSidecarConfig,
  type SessionPolicyObject,
  setCondition,
} from './index.ts';

const testdata = goldenDir(new URL('./testdata/', import.meta.url));

function golden(file: string, actual: unknown): void {
  testdata.check(file, `${JSON.stringify(actual, null, 2)}\n`);
}

function loadPolicy(name: string): SessionPolicyObject {
  return parse(testdata.read(name)) as SessionPolicyObject;
}

const cases = readdirSync(testdata.dir)
  .filter((f) => f.endsWith('.policy.yaml'))
  .map((f) => f.replace(/\.policy\.yaml$/, ''));

describe('golden renders', () => {
  it('has cases', () => assert.ok(cases.length >= 3));
  for (const name of cases) {
    it(`${name}: sidecar config`, () => {
      const config = renderSidecarConfig(loadPolicy(`${name}.policy.yaml`));
      // The rendered config must be exactly what the sidecar's schema accepts, unchanged.
      assert.deepEqual(sidecarConfigSchema.parse(config), config);
      golden(`${name}.config.json`, config);
    });
    it(`${name}: ConfigMap`, () => {
      const policy = loadPolicy(`${name}.policy.yaml`);
      golden(`${name}.configmap.json`, renderConfigMap(policy, renderSidecarConfig(policy)));
    });
    it(`${name}: NetworkPolicy`, () => {
      golden(`${name}.networkpolicy.json`, renderNetworkPolicy(loadPolicy(`${name}.policy.yaml`)));
    });
  }
  it('leaves no file in testdata unused', () => testdata.assertNoStrayFiles());
});

describe('renderSidecarConfig', () => {
  const base = loadPolicy('minimal.policy.yaml');
  const withSpec = (patch: (spec: Record<string, unknown>) => void): SessionPolicyObject => {
    const copy = structuredClone(base);
    patch(copy.spec as Record<string, unknown>);
    return copy;
  };

  it('is deterministic and never carries a secret name as a value', () => {
    const a = JSON.stringify(renderSidecarConfig(base));
    assert.equal(a, JSON.stringify(renderSidecarConfig(structuredClone(base))));
    assert.ok(!a.includes('orders-db-credentials'));
    assert.ok(!a.includes('chaperone-signing-key'));
    assert.ok(a.includes('/var/run/chaperone/credentials/orders'));
  });

  it('refuses a spec the schema refuses, with the path in the message', () => {
    const bad = withSpec((spec) => {
      spec.targets = [];
    });
    assert.throws(
      () => renderSidecarConfig(bad),
      (error: unknown) =>
        error instanceof PolicyInvalidError &&
        error.reason === 'InvalidSpec' &&
        error.message.includes('targets'),
    );
  });

  it('refuses semantic conflicts the schema cannot see', () => {
    const twoOnOnePort = withSpec((spec) => {
      const [t] = spec.targets as Record<string, unknown>[];
      spec.targets = [t, { ...t, name: 'copy' }];
    });
    assert.throws(() => renderSidecarConfig(twoOnOnePort), /both listen on port 15432/);
    const transparentByName = withSpec((spec) => {
      (spec.targets as Record<string, unknown>[])[0]!.transparent = true;
    });
    assert.throws(() => renderSidecarConfig(transparentByName), /is not an IP address/);
    const unknownTarget = withSpec((spec) => {
      spec.guardrails = [{ name: 'x', targets: ['nope'], match: {}, action: 'block' }];
    });
    assert.throws(() => renderSidecarConfig(unknownTarget), /unknown target "nope"/);
    assert.throws(
      () => renderSidecarConfig(base, { adminPort: 15432 }),
      /listens on the sidecar's admin port/,
    );
  });

  it('carries policy name, namespace and generation', () => {
    const config = renderSidecarConfig({ ...base, metadata: { ...base.metadata, generation: 42 } });
    assert.deepEqual(config.policy, { name: 'orders-db', namespace: 'agents', generation: 42 });
  });
});

describe('renderNetworkPolicy', () => {
  it('uses ipBlock for IP hosts and port-only rules for names', () => {
    const np = renderNetworkPolicy(loadPolicy('full.policy.yaml'));
    const rules = np.spec.egress;
    assert.deepEqual(rules.find((r) => r.ports[0]?.port === 5432)?.to, [
      { ipBlock: { cidr: '10.20.30.40/32' } },
    ]);
    assert.deepEqual(rules.find((r) => r.ports[0]?.port === 22)?.to, [{ ipBlock: { cidr: 'fd00::22/128' } }]);
    const https = rules.filter((r) => r.ports[0]?.port === 443 && r.to === undefined);
    assert.equal(https.length, 1, 'identical port-only rules are merged');
    assert.deepEqual(np.spec.policyTypes, ['Egress']);
    assert.equal(np.metadata.ownerReferences?.[0]?.controller, true);
  });

  it('narrows host-name targets when told the cluster ranges', () => {
    const clusterCidrs = ['10.244.0.0/16', '10.96.0.0/12', 'fd00:10:96::/108'];
    const policy = loadPolicy('minimal.policy.yaml');
    const spec = policy.spec as { targets: Array<Record<string, unknown>> };
    const first = spec.targets[0]!;
    spec.targets.push(
      { ...first, name: 'ext', listenPort: 15999, upstream: { host: 'db.example.com', port: 5433 } },
      {
        ...first,
        name: 'svc',
        listenPort: 15998,
        upstream: { host: 'orders.data.svc.cluster.local', port: 5434 },
      },
    );
    const rules = renderNetworkPolicy(policy, { clusterCidrs }).spec.egress;
    assert.deepEqual(rules.find((r) => r.ports[0]?.port === 5433)?.to, [
      { ipBlock: { cidr: '0.0.0.0/0', except: ['10.244.0.0/16', '10.96.0.0/12'] } },
      { ipBlock: { cidr: '::/0', except: ['fd00:10:96::/108'] } },
    ]);
    assert.deepEqual(
      rules.find((r) => r.ports[0]?.port === 5434)?.to,
      clusterCidrs.map((cidr) => ({ ipBlock: { cidr } })),
    );
    // Without the ranges a name keeps its port-only rule.
    assert.equal(
      renderNetworkPolicy(policy).spec.egress.find((r) => r.ports[0]?.port === 5433)?.to,
      undefined,
    );
  });
});

describe('helpers', () => {
  it('parses s3 urls', () => {
    assert.deepEqual(parseS3Url('s3://b'), { bucket: 'b', prefix: '' });
    assert.deepEqual(parseS3Url('s3://b/'), { bucket: 'b', prefix: '' });
    assert.deepEqual(parseS3Url('s3://b/x/y'), { bucket: 'b', prefix: 'x/y/' });
    assert.equal(parseS3Url('s3://'), undefined);
  });
  it('keeps lastTransitionTime while the status stays', () => {
    const t1 = new Date('2026-01-01T00:00:00Z');
    const t2 = new Date('2026-01-02T00:00:00Z');
    const first = setCondition(undefined, { type: 'Ready', status: 'True', reason: 'A', message: 'a' }, t1);
    const same = setCondition(first, { type: 'Ready', status: 'True', reason: 'B', message: 'b' }, t2);
    assert.equal(same[0]?.lastTransitionTime, '2026-01-01T00:00:00Z');
    assert.equal(same[0]?.reason, 'B');
    const flipped = setCondition(same, { type: 'Ready', status: 'False', reason: 'C', message: 'c' }, t2);
    assert.equal(flipped[0]?.lastTransitionTime, '2026-01-02T00:00:00Z');
    assert.equal(flipped.length, 1);
  });
});
