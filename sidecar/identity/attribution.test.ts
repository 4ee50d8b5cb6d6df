// The pure parts of attribution and liveness: the launcher env, the chain, token binding rules,
// the offboarding list formats, and the alert text carrying the chain.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { slackPayload } from '../policy/alerts/slack.ts';
import { attributionChain, describeChain, identityAttribution } from './attribution.ts';
import type { IdentityError } from './errors.ts';
import { checkBinding, kubernetesBinding } from './kubernetes.ts';
import { launcherFromEnv } from './launcher.ts';
import { daysSince, parseOffboarding } from './offboarding.ts';
import { podIdentityFromEnv } from './pod.ts';

const stamp = JSON.stringify({
  username: 'alice',
  groups: ['dev'],
  via: { kind: 'Job', namespace: 'ns', name: 'nightly' },
});

describe('attribution chain', () => {
  it('reads the launcher from the downward-API env and builds the chain', () => {
    const pod = podIdentityFromEnv({
      CHAPERONE_POD_NAME: 'nightly-abc',
      CHAPERONE_POD_NAMESPACE: 'ns',
      CHAPERONE_SERVICE_ACCOUNT: 'runner',
      CHAPERONE_LAUNCHED_BY: stamp,
    });
    const chain = attributionChain(pod, {
      subject: 'system:serviceaccount:ns:runner',
      issuer: 'https://k8s',
    });
    assert.equal(chain.launcher?.username, 'alice');
    assert.deepEqual(chain.workload, { kind: 'Job', namespace: 'ns', name: 'nightly' });
    assert.equal(chain.serviceAccount, 'system:serviceaccount:ns:runner');
    assert.equal(
      describeChain(chain),
      'launched by alice -> Job/nightly -> pod ns/nightly-abc -> service account system:serviceaccount:ns:runner -> token subject system:serviceaccount:ns:runner',
    );
    assert.equal(identityAttribution({ attribution: chain }).launchedBy, 'alice');
    const text = slackPayload({ kind: 'identityRevoked', target: 'db', message: 'x', attribution: chain });
    assert.match(JSON.stringify(text.blocks), /launched by alice \(Job\/nightly\)/);
  });

  it('records an unreadable launcher instead of dropping it', () => {
    assert.ok(launcherFromEnv({ CHAPERONE_LAUNCHED_BY: '{oops' }) instanceof Error);
    const chain = attributionChain(podIdentityFromEnv({ CHAPERONE_LAUNCHED_BY: '{oops' }), undefined);
    assert.ok(chain.launcherError);
    assert.equal(launcherFromEnv({}), undefined);
  });
});

describe('Kubernetes token binding', () => {
  const pod = { namespace: 'ns', serviceAccount: 'agent', pod: 'agent-0', podUid: 'u1' };
  const bound = (sa: string, podName?: string, uid?: string) =>
    kubernetesBinding({
      'kubernetes.io': {
        namespace: 'ns',
        serviceaccount: { name: sa },
        ...(podName ? { pod: { name: podName, uid } } : {}),
      },
    })!;

  it('accepts its own pod and service account, refuses others', () => {
    checkBinding(bound('agent', 'agent-0', 'u1'), pod, 'pod');
    checkBinding(bound('agent'), pod, 'serviceAccount');
    assert.throws(
      () => checkBinding(bound('agent'), pod, 'pod'),
      (e: IdentityError) => e.code === 'binding',
    );
    assert.throws(
      () => checkBinding(bound('agent', 'agent-0', 'u2'), pod, 'serviceAccount'),
      /bound to pod agent-0 \(uid u2\)/,
    );
    assert.throws(
      () => checkBinding(bound('other'), pod, 'serviceAccount'),
      /token of service account ns\/other/,
    );
    checkBinding(bound('other'), pod, 'any');
  });

  it('reads the claims of Secret-based tokens', () => {
    const b = kubernetesBinding({
      'kubernetes.io/serviceaccount/namespace': 'ns',
      'kubernetes.io/serviceaccount/service-account.name': 'agent',
      'kubernetes.io/serviceaccount/secret.name': 'agent-token',
    });
    assert.deepEqual(b, {
      namespace: 'ns',
      serviceAccount: 'agent',
      serviceAccountUid: undefined,
      secret: 'agent-token',
      legacy: true,
    });
    checkBinding(b!, pod, 'serviceAccount');
    assert.throws(() => checkBinding(b!, pod, 'pod'), /Secret-based token agent-token/);
  });
});

describe('offboarding list', () => {
  it('reads JSON lists, maps and lines; ignores entries without a date', () => {
    assert.deepEqual(parseOffboarding('[{"subject":"carol","date":"2026-01-02"},{"subject":"x"}]'), [
      { subject: 'carol', date: '2026-01-02' },
    ]);
    assert.deepEqual(parseOffboarding('{"dave":"2026-02-03"}'), [{ subject: 'dave', date: '2026-02-03' }]);
    assert.deepEqual(parseOffboarding('# who when\nsystem:serviceaccount:ci:deployer 2026-03-04\n\n'), [
      { subject: 'system:serviceaccount:ci:deployer', date: '2026-03-04' },
    ]);
    assert.equal(daysSince({ subject: 'a', date: '2026-01-01' }, new Date('2026-01-13T10:00:00Z')), 12);
  });
});
