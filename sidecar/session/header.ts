// The one session-header builder: what binds a recording to the agent (identity, pod, source), the
// target, the policy and the sidecar, for accepted and refused sessions alike.
import type { SessionHeaderInput } from '../../recording/index.ts';
import { type AgentIdentity, type AttributionChain, identityAttribution } from '../server/modules.ts';
import type { CoreRuntime, CoreServices, Protocol } from './context.ts';

export interface HeaderInput {
  protocol: Protocol;
  runtime: CoreRuntime;
  services: CoreServices;
  /** The agent's address as the gateway saw it. */
  source: string;
  /** The verified identity; absent for a refused session (the pod's own identity is then recorded). */
  identity?: AgentIdentity;
  /** For a refused session: the attribution the verifier could still establish. */
  attribution?: AttributionChain;
  labels: Record<string, string>;
}

export function sessionHeader(input: HeaderInput): SessionHeaderInput {
  const { runtime: rt, services, identity } = input;
  const pod = services.pod;
  const who = identity
    ? {
        subject: identity.subject,
        issuer: identity.issuer,
        claims: identity.claims,
        serviceAccount: identity.serviceAccount ?? pod.serviceAccount,
        pod: identity.pod ?? pod.pod,
        namespace: identity.namespace ?? pod.namespace,
        node: identity.node ?? pod.node,
        podUid: identity.podUid ?? pod.podUid,
        source: input.source,
        ...identityAttribution(identity),
      }
    : { ...pod, source: input.source, ...identityAttribution({ attribution: input.attribution }) };
  return {
    protocol: input.protocol,
    target: { name: rt.target.name, host: rt.target.upstream.host, port: rt.target.upstream.port },
    identity: who,
    policy: rt.policy,
    sidecarVersion: services.sidecarVersion,
    labels: input.labels,
  };
}
