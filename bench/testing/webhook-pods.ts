// What both webhook benchmarks admit: one SessionPolicy (a transparent PostgreSQL target and an SSH
// target) and the agent's pod it matches, so the in-process and the apiserver numbers compare.
import type { V1Pod } from '@kubernetes/client-node';

/** The benchmarks' SessionPolicy spec. */
export const benchPolicySpec = {
  podSelector: {},
  targets: [
    {
      name: 'db',
      protocol: 'postgres',
      upstream: { host: '10.0.0.50', port: 5432 },
      listenPort: 15432,
      transparent: true,
    },
    {
      name: 'bastion',
      protocol: 'ssh',
      upstream: { host: 'bastion.example', port: 22 },
      listenPort: 15022,
    },
  ],
  recording: { store: { url: 's3://recordings/bench' }, signingKeySecret: { name: 'signing-key' } },
};

/** The agent's pod; without `namespace` the apiserver sets it from the request path. */
export function agentPod(name: string, namespace?: string): V1Pod {
  return {
    metadata: { name, ...(namespace === undefined ? {} : { namespace }), labels: { app: 'agent' } },
    spec: {
      securityContext: { runAsUser: 1000 },
      containers: [{ name: 'agent', image: 'registry.example/agent:1' }],
    },
  };
}
