// Who may write the operator's ConfigMaps and NetworkPolicies (the handler alone; the attack suite
// tries it through the real apiserver).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { AdmissionRequest, UserInfo } from './admission.ts';
import { validateOperatorChild } from './handlers/operator-children.ts';
import { testConfig } from './testing/fixtures.ts';

function request(userInfo: UserInfo, operation: AdmissionRequest['operation'] = 'UPDATE'): AdmissionRequest {
  return {
    uid: 'u',
    kind: { group: '', version: 'v1', kind: 'ConfigMap' },
    resource: { group: '', version: 'v1', resource: 'configmaps' },
    name: 'chaperone-policy-orders',
    namespace: 'agents',
    operation,
    userInfo,
  };
}

describe('validateOperatorChild', () => {
  it("lets the operator's service account, the garbage collector and cluster admins write", () => {
    for (const user of [
      { username: 'system:serviceaccount:chaperone-system:chaperone-operator' },
      { username: 'system:serviceaccount:kube-system:generic-garbage-collector' },
      { username: 'root', groups: ['system:masters'] },
    ]) {
      assert.equal(validateOperatorChild(request(user), testConfig).allowed, true, user.username);
    }
  });

  it('refuses anyone else, naming the rule, the object and the user', () => {
    const decision = validateOperatorChild(
      request({ username: 'mallory', groups: ['dev'] }, 'DELETE'),
      testConfig,
    );
    assert.equal(decision.allowed, false);
    assert.match(
      (decision as { message: string }).message,
      /^chaperone: \[operator-owned\] ConfigMap chaperone-policy-orders is written by the chaperone operator only .* DELETE by mallory refused$/,
    );
  });

  it('operatorUsers replaces the default service account', () => {
    const config = { ...testConfig, operatorUsers: ['ops-bot'] };
    assert.equal(validateOperatorChild(request({ username: 'ops-bot' }), config).allowed, true);
    const sa = { username: 'system:serviceaccount:chaperone-system:chaperone-operator' };
    assert.equal(validateOperatorChild(request(sa), config).allowed, false);
  });
});
