import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { stringify } from 'yaml';
import { MANAGED_BY_VALUE, LABELS as OPERATOR_LABELS } from '../operator/render/labels.ts';
import { OPERATOR_CHILD_LABEL } from './constants.ts';
import { assertGolden } from './testing/golden.ts';
import { renderWebhookConfigurations } from './webhook-configurations.ts';

const caBundle = '-----BEGIN CERTIFICATE-----\nMIIBfake\n-----END CERTIFICATE-----\n';

describe('renderWebhookConfigurations', () => {
  it('URL mode (local process, tests, demo)', async () => {
    const out = renderWebhookConfigurations({
      client: { mode: 'url', baseUrl: 'https://127.0.0.1:9443/' },
      caBundle,
      systemNamespace: 'chaperone-system',
    });
    await assertGolden(
      'webhook-configurations.url.yaml',
      `${stringify(out.mutating)}---\n${stringify(out.validating)}`,
    );
  });

  it('service mode (the chart), with a timeout and extra namespace labels', async () => {
    const out = renderWebhookConfigurations({
      client: { mode: 'service', namespace: 'chaperone-system', name: 'chaperone-webhook' },
      caBundle,
      systemNamespace: 'chaperone-system',
      timeoutSeconds: 5,
      extraNamespaceLabels: { tenant: 'a' },
    });
    await assertGolden(
      'webhook-configurations.service.yaml',
      `${stringify(out.mutating)}---\n${stringify(out.validating)}`,
    );
  });

  it('fails closed, has no side effects, and never matches the system namespace or kube-system', () => {
    const out = renderWebhookConfigurations({
      client: { mode: 'url', baseUrl: 'https://127.0.0.1:1' },
      caBundle,
      systemNamespace: 'ops-chaperone',
    });
    for (const hook of [...out.mutating.webhooks!, ...out.validating.webhooks!]) {
      assert.equal(hook.failurePolicy, 'Fail');
      assert.equal(hook.sideEffects, 'None');
      const excluded = hook.namespaceSelector?.matchExpressions?.find(
        (e) => e.key === 'kubernetes.io/metadata.name',
      );
      assert.deepEqual(excluded, {
        key: 'kubernetes.io/metadata.name',
        operator: 'NotIn',
        values: ['ops-chaperone', 'kube-system'],
      });
      assert.equal(Buffer.from(hook.clientConfig.caBundle!, 'base64').toString(), caBundle);
    }
    const pods = out.mutating.webhooks!.find((w) => w.name === 'pods.chaperone.dev')!;
    assert.equal(pods.reinvocationPolicy, 'IfNeeded');
    assert.deepEqual(pods.namespaceSelector?.matchLabels, { 'chaperone.dev/recording': 'enabled' });
    assert.equal(out.mutating.metadata?.labels?.['app.kubernetes.io/part-of'], 'chaperone');
    const validatePods = out.validating.webhooks!.find((w) => w.name === 'pods.chaperone.dev')!;
    assert.deepEqual(validatePods.rules?.find((r) => r.operations?.includes('CONNECT'))?.resources, [
      'pods/exec',
      'pods/attach',
      'pods/portforward',
    ]);
    // The operator's children are matched by the label the operator stamps on them.
    assert.deepEqual(OPERATOR_CHILD_LABEL, { key: OPERATOR_LABELS.managedBy, value: MANAGED_BY_VALUE });
    const children = out.validating.webhooks!.find((w) => w.name === 'operator-children.chaperone.dev')!;
    assert.deepEqual(children.objectSelector?.matchLabels, { [OPERATOR_LABELS.managedBy]: MANAGED_BY_VALUE });
  });
});
