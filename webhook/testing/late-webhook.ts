// Another mutating webhook next to chaperone's, for the reinvocation and tampering tests: registered
// by URL as `zzz-<name>-<run id>`, so the apiserver calls it after chaperone's (configurations run in
// name order), in this run's namespaces only. It answers each pod with the JSON patch `patch` returns.
import { createServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { V1Pod } from '@kubernetes/client-node';
import { RUN_LABEL, type WebhookHarness } from './harness.ts';

export interface LateWebhookOptions {
  /** `late` registers `zzz-late-<id>` with a webhook named `late.test.chaperone.dev`. */
  name: string;
  /** Which pods it is called for. */
  objectSelector: object;
  reinvocationPolicy: 'Never' | 'IfNeeded';
  /** JSON patch operations for the pod under admission (none: admitted unchanged). */
  patch: (pod: V1Pod) => object[];
}

export interface LateWebhook {
  /** Unregisters the webhook, then stops its server. */
  close(): Promise<void>;
}

/** Starts the webhook (serving with the harness's certificate) and registers it. */
export async function startLateWebhook(h: WebhookHarness, options: LateWebhookOptions): Promise<LateWebhook> {
  const configuration = `zzz-${options.name}-${h.id}`;
  const server = createServer({ key: h.serving.keyPem, cert: h.serving.certPem }, (req, res) => {
    let body = '';
    req.on('data', (d) => {
      body += d;
    });
    req.on('end', () => {
      const review = JSON.parse(body);
      const patch = options.patch(review.request.object as V1Pod);
      res.setHeader('content-type', 'application/json');
      res.end(
        JSON.stringify({
          apiVersion: 'admission.k8s.io/v1',
          kind: 'AdmissionReview',
          response: {
            uid: review.request.uid,
            allowed: true,
            patchType: 'JSONPatch',
            patch: Buffer.from(JSON.stringify(patch)).toString('base64'),
          },
        }),
      );
    });
  });
  const close = async () => {
    await h.kubectl(['delete', 'mutatingwebhookconfiguration', configuration, '--ignore-not-found']);
    server.close();
  };
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  try {
    await h.mustKubectl(['apply', '-f', '-'], {
      apiVersion: 'admissionregistration.k8s.io/v1',
      kind: 'MutatingWebhookConfiguration',
      metadata: { name: configuration },
      webhooks: [
        {
          name: `${options.name}.test.chaperone.dev`,
          clientConfig: {
            url: `https://127.0.0.1:${port}/`,
            caBundle: Buffer.from(h.ca.certPem).toString('base64'),
          },
          rules: [{ operations: ['CREATE'], apiGroups: [''], apiVersions: ['v1'], resources: ['pods'] }],
          namespaceSelector: { matchLabels: { [RUN_LABEL]: h.id } },
          objectSelector: options.objectSelector,
          sideEffects: 'None',
          admissionReviewVersions: ['v1'],
          failurePolicy: 'Fail',
          reinvocationPolicy: options.reinvocationPolicy,
        },
      ],
    });
  } catch (error) {
    await close();
    throw error;
  }
  return { close };
}
