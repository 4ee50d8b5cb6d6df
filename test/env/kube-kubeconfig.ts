// The admin kubeconfig of the test control plane (self-contained: certs inline) and a
// @kubernetes/client-node KubeConfig loaded from it.
import { KubeConfig } from '@kubernetes/client-node';
import { stringify } from 'yaml';
import type { KubeInfo } from './types.ts';

export interface KubeconfigInput {
  server: string;
  caPem: string;
  clientCertPem: string;
  clientKeyPem: string;
  /** Name of the cluster, user and context. */
  name?: string;
}

const b64 = (pem: string) => Buffer.from(pem, 'utf8').toString('base64');

/** Renders a kubeconfig with one cluster, one client-cert user and one current context. */
export function renderKubeconfig(input: KubeconfigInput): string {
  const name = input.name ?? 'chaperone-test';
  return stringify({
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name, cluster: { server: input.server, 'certificate-authority-data': b64(input.caPem) } }],
    users: [
      {
        name,
        user: {
          'client-certificate-data': b64(input.clientCertPem),
          'client-key-data': b64(input.clientKeyPem),
        },
      },
    ],
    contexts: [{ name, context: { cluster: name, user: name } }],
    'current-context': name,
    preferences: {},
  });
}

/** A KubeConfig for the admin user of a running test control plane. */
export function kubeConfigFor(info: Pick<KubeInfo, 'kubeconfigPath'>): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromFile(info.kubeconfigPath);
  return kc;
}
