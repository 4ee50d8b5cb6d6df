// The kubeconfig an agent container gets in explicit mode: the sidecar as its API server on
// loopback over TLS (the sidecar's own certificate as the CA: serving-cert.ts), the agent's own
// projected token as its credential (kubectl reads the file each time, so rotation works;
// @kubernetes/client-node reads it when the kubeconfig is loaded).
import { stringify } from 'yaml';

export interface AgentKubeconfigInput {
  listenPort: number;
  caPem: string;
  tokenFile: string;
  namespace?: string;
}

export function agentKubeconfig(input: AgentKubeconfigInput): string {
  return stringify({
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [
      {
        name: 'chaperone',
        cluster: {
          server: `https://127.0.0.1:${input.listenPort}`,
          'certificate-authority-data': Buffer.from(input.caPem).toString('base64'),
        },
      },
    ],
    // tokenFile for kubectl and client-go; token-file for @kubernetes/client-node, which reads no
    // other key (each client ignores the other's).
    users: [{ name: 'agent', user: { tokenFile: input.tokenFile, 'token-file': input.tokenFile } }],
    contexts: [
      {
        name: 'chaperone',
        context: {
          cluster: 'chaperone',
          user: 'agent',
          ...(input.namespace ? { namespace: input.namespace } : {}),
        },
      },
    ],
    'current-context': 'chaperone',
  });
}
