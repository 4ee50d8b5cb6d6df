import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { policyProblems } from './handlers/session-policies.ts';
import {
  choosePolicy,
  namedSecrets,
  notReadyReason,
  type RawSessionPolicy,
  sidecarHostNames,
} from './policy.ts';
import { selectorMatches } from './selector.ts';
import { goldenPolicy } from './testing/fixtures.ts';

const spec = (podSelector: object, extra: object = {}) => ({
  podSelector,
  targets: [{ name: 'db', protocol: 'postgres', upstream: { host: 'db', port: 5432 }, listenPort: 15432 }],
  recording: { store: { url: 's3://b' }, signingKeySecret: { name: 'k' } },
  ...extra,
});
const raw = (
  name: string,
  s: object,
  status?: RawSessionPolicy['status'],
  generation = 1,
): RawSessionPolicy => ({
  metadata: { name, generation },
  spec: s,
  ...(status ? { status } : {}),
});
const ready = (observedGeneration: number): RawSessionPolicy['status'] => ({
  observedGeneration,
  conditions: [{ type: 'Ready', status: 'True' }],
});

describe('selectorMatches', () => {
  it('implements matchLabels and every matchExpressions operator', () => {
    const labels = { app: 'agent', tier: 'batch' };
    assert.ok(selectorMatches({}, labels));
    assert.ok(selectorMatches({ matchLabels: { app: 'agent' } }, labels));
    assert.ok(!selectorMatches({ matchLabels: { app: 'web' } }, labels));
    assert.ok(
      selectorMatches(
        { matchExpressions: [{ key: 'tier', operator: 'In', values: ['batch', 'x'] }] },
        labels,
      ),
    );
    assert.ok(
      !selectorMatches({ matchExpressions: [{ key: 'tier', operator: 'NotIn', values: ['batch'] }] }, labels),
    );
    assert.ok(
      selectorMatches({ matchExpressions: [{ key: 'zone', operator: 'NotIn', values: ['a'] }] }, labels),
    );
    assert.ok(selectorMatches({ matchExpressions: [{ key: 'app', operator: 'Exists' }] }, labels));
    assert.ok(!selectorMatches({ matchExpressions: [{ key: 'app', operator: 'DoesNotExist' }] }, labels));
  });
});

describe('choosePolicy', () => {
  const policies = [
    raw('a', spec({ matchLabels: { app: 'agent' } })),
    raw('b', spec({ matchLabels: { app: 'agent', tier: 'batch' } })),
    raw('broken', { podSelector: { matchLabels: 5 } }),
  ];
  it('picks the only match, reports several sorted by name, or none', () => {
    assert.deepEqual(choosePolicy(policies, { app: 'agent', tier: 'batch' }), {
      kind: 'many',
      names: ['a', 'b'],
    });
    assert.equal(
      (choosePolicy(policies, { app: 'agent' }) as { policy: RawSessionPolicy }).policy.metadata.name,
      'a',
    );
    assert.deepEqual(choosePolicy(policies, { app: 'web' }), { kind: 'none' });
  });
});

describe('notReadyReason', () => {
  it('needs Ready=True for the current generation', () => {
    assert.match(notReadyReason(raw('p', {}))!, /no Ready condition/);
    assert.match(
      notReadyReason(raw('p', {}, ready(1), 2))!,
      /has not rendered generation 2 yet \(observed 1\)/,
    );
    assert.equal(notReadyReason(raw('p', {}, ready(2), 2)), undefined);
  });
});

describe('policyProblems', () => {
  it('names every semantic error with its path', () => {
    const { errors } = policyProblems(
      spec(
        {},
        {
          targets: [
            {
              name: 'db',
              protocol: 'postgres',
              upstream: { host: 'db.svc', port: 5432 },
              listenPort: 15432,
              transparent: true,
            },
            { name: 'ssh', protocol: 'ssh', upstream: { host: '10.0.0.5', port: 22 }, listenPort: 15432 },
          ],
          guardrails: [{ name: 'g', targets: ['nope'], match: {}, action: 'block' }],
        },
      ),
      { adminPort: 15090 },
    );
    assert.deepEqual(errors, [
      'spec.targets[0] (db): transparent needs upstream.host to be an IP address (iptables matches addresses), got "db.svc"',
      'spec.targets[1] (ssh): listenPort 15432 is already used by target db',
      'spec.guardrails[0] (g): targets nope not found among spec.targets (db, ssh)',
    ]);
  });

  it('reports schema errors with spec paths', () => {
    const { errors } = policyProblems({ targets: [] }, { adminPort: 15090 });
    assert.ok(errors.some((e) => e.startsWith('spec.targets: ')));
    assert.ok(errors.some((e) => e.startsWith('spec.recording: ')));
  });

  it('warns when a match field can never apply to the rule targets', () => {
    const { errors, warnings } = policyProblems(
      spec({}, { guardrails: [{ name: 'g', match: { commandPattern: 'rm -rf' }, action: 'block' }] }),
      { adminPort: 15090 },
    );
    assert.deepEqual(errors, []);
    assert.match(warnings.join('\n'), /match\.commandPattern applies to ssh targets only/);
  });
});

describe('namedSecrets', () => {
  it('finds every Secret the raw policies name, even invalid ones and fields added later', async () => {
    const { raw: golden } = await goldenPolicy();
    const invalid = raw('broken', {
      targets: 'not-a-list',
      future: { clientCertSecretRef: { name: 'client-cert' } },
    });
    assert.deepEqual(namedSecrets([golden, invalid]), [
      'bastion-key',
      // Not named in the spec: the sidecar's SSH host key the operator creates for each policy.
      'chaperone-ssh-host-key-broken',
      'chaperone-ssh-host-key-payments-agents',
      'client-cert',
      'payments-db-ca',
      'payments-db-credentials',
      'recording-signing-key',
      'recordings-s3',
      'slack',
    ]);
  });
});

describe('sidecarHostNames', () => {
  it('lists the names the sidecar resolves, not IP addresses', async () => {
    const { resolved } = await goldenPolicy();
    assert.deepEqual(sidecarHostNames(resolved.spec), [
      'amazonaws.com',
      'kubernetes',
      'kubernetes.default',
      'kubernetes.default.svc',
      'ledger.internal',
      'payments-db.data.svc',
    ]);
  });
});
