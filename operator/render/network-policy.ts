// SessionPolicy -> NetworkPolicy: a pure function. Defence in depth only: a NetworkPolicy covers the
// whole pod IP and cannot tell the sidecar from the agent; the iptables rules of chaperone-init are
// the hard guarantee. It still narrows what a compromised pod can reach to the destinations the
// sidecar itself needs.
//
// Kubernetes NetworkPolicy selects peers by IP block or by pod/namespace labels, never by DNS name.
// So a target or endpoint given as a host name gets a port-only rule (that port, any destination);
// an IP address gets an ipBlock rule (/32 or /128) with its port. When the operator is told the
// cluster's pod and Service ranges (clusterCidrs), a name is narrowed further: a cluster name
// (*.svc, *.svc.<domain>) to those ranges, any other name to everything but those ranges, so the
// port of an external target cannot reach into the cluster (see docs/security.md).
import { isIP } from 'node:net';
import type { LabelSelector } from '../../crds/index.ts';
import { type ChildMetadata, childMetadata } from './children.ts';
import { parsePolicySpec, type SessionPolicyObject } from './policy.ts';

export interface NetworkPolicyPort {
  protocol: 'TCP' | 'UDP';
  port: number;
}

export interface NetworkPolicyPeer {
  ipBlock?: { cidr: string; except?: string[] };
  namespaceSelector?: LabelSelector;
  podSelector?: LabelSelector;
}

export interface NetworkPolicyEgressRule {
  to?: NetworkPolicyPeer[];
  ports: NetworkPolicyPort[];
}

export interface RenderedNetworkPolicy {
  apiVersion: 'networking.k8s.io/v1';
  kind: 'NetworkPolicy';
  metadata: ChildMetadata;
  spec: {
    podSelector: LabelSelector;
    policyTypes: ['Egress'];
    egress: NetworkPolicyEgressRule[];
  };
}

export interface Endpoint {
  /** IP address or host name; absent: any destination on that port. */
  host?: string;
  port: number;
}

export interface NetworkPolicyOptions {
  /** Where the cluster resolver runs. Default: pods k8s-app=kube-dns in kube-system. */
  dns?: { namespace: string; podLabels: Record<string, string> };
  /**
   * The apiserver as pods reach it after Service DNAT. Default: ports 443 and 6443, any destination
   * (the endpoint IP is a cluster fact the policy does not know).
   */
  apiServer?: Endpoint[];
  /** The sidecar's approvals backend; 'kubernetes' needs the apiserver when a rule asks for approval. */
  approvalsBackend?: 'none' | 'local' | 'kubernetes';
  /** The cluster's pod and Service CIDRs; absent: host names get port-only rules. */
  clusterCidrs?: readonly string[];
}

const DEFAULT_DNS = { namespace: 'kube-system', podLabels: { 'k8s-app': 'kube-dns' } };
const DEFAULT_API_SERVER: Endpoint[] = [{ port: 443 }, { port: 6443 }];

function endpointOfUrl(url: string): Endpoint {
  const parsed = new URL(url);
  const port = parsed.port !== '' ? Number(parsed.port) : parsed.protocol === 'http:' ? 80 : 443;
  return { host: parsed.hostname.replace(/^\[(.*)\]$/, '$1'), port };
}

/** A name resolved by the cluster DNS to a Service: <svc>.<ns>.svc, optionally .<cluster domain>. */
export function isClusterName(host: string): boolean {
  return /^[^.]+\.[^.]+\.svc(\.|$)/.test(host.toLowerCase().replace(/\.$/, ''));
}

function cidrFamily(cidr: string): number {
  return isIP(cidr.split('/')[0] ?? '');
}

function namePeers(host: string, clusterCidrs: readonly string[]): NetworkPolicyPeer[] {
  if (isClusterName(host)) return clusterCidrs.map((cidr) => ({ ipBlock: { cidr } }));
  return (
    [
      ['0.0.0.0/0', 4],
      ['::/0', 6],
    ] as const
  ).map(([cidr, family]) => {
    const except = clusterCidrs.filter((c) => cidrFamily(c) === family);
    return { ipBlock: except.length > 0 ? { cidr, except } : { cidr } };
  });
}

function ruleFor(endpoint: Endpoint, clusterCidrs?: readonly string[]): NetworkPolicyEgressRule {
  const ports: NetworkPolicyPort[] = [{ protocol: 'TCP', port: endpoint.port }];
  const family = endpoint.host === undefined ? 0 : isIP(endpoint.host);
  if (family === 0) {
    if (endpoint.host === undefined || !clusterCidrs || clusterCidrs.length === 0) return { ports };
    return { to: namePeers(endpoint.host, clusterCidrs), ports };
  }
  return { to: [{ ipBlock: { cidr: `${endpoint.host}/${family === 4 ? 32 : 128}` } }], ports };
}

function dnsRule(dns: { namespace: string; podLabels: Record<string, string> }): NetworkPolicyEgressRule {
  return {
    to: [
      {
        namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': dns.namespace } },
        podSelector: { matchLabels: dns.podLabels },
      },
    ],
    ports: [
      { protocol: 'UDP', port: 53 },
      { protocol: 'TCP', port: 53 },
    ],
  };
}

/** Drops empty fields of a label selector so the rendered object equals what the apiserver stores. */
function cleanSelector(selector: LabelSelector): LabelSelector {
  return {
    ...(selector.matchLabels && Object.keys(selector.matchLabels).length > 0
      ? { matchLabels: selector.matchLabels }
      : {}),
    ...(selector.matchExpressions && selector.matchExpressions.length > 0
      ? { matchExpressions: selector.matchExpressions }
      : {}),
  };
}

export function renderNetworkPolicy(
  policy: SessionPolicyObject,
  options: NetworkPolicyOptions = {},
): RenderedNetworkPolicy {
  const spec = parsePolicySpec(policy);
  const endpoints: Endpoint[] = [];
  for (const target of spec.targets)
    endpoints.push({ host: target.upstream.host, port: target.upstream.port });

  const store = spec.recording.store;
  if (store.url.startsWith('s3://')) {
    // Without an endpoint the store is AWS S3 over HTTPS.
    endpoints.push(store.endpoint ? endpointOfUrl(store.endpoint) : { port: 443 });
  }

  let needsApiServer = false;
  for (const issuer of spec.identity.issuers) {
    if (issuer.kubernetes) needsApiServer = true;
    else endpoints.push(endpointOfUrl(issuer.issuer));
    if (issuer.jwksUri) endpoints.push(endpointOfUrl(issuer.jwksUri));
    if (issuer.introspection?.endpoint) endpoints.push(endpointOfUrl(issuer.introspection.endpoint));
  }
  // Identity liveness: TokenReview, legacy tokens and the offboarding ConfigMap ask the apiserver.
  const { liveness, legacyServiceAccountTokens, offboarding } = spec.identity;
  if (liveness.tokenReview || legacyServiceAccountTokens || offboarding?.configMap) needsApiServer = true;
  if (offboarding?.url) endpoints.push(endpointOfUrl(offboarding.url));
  const asksApproval = spec.guardrails.some((rule) => rule.action === 'requireApproval');
  if (asksApproval && (options.approvalsBackend ?? 'kubernetes') === 'kubernetes') needsApiServer = true;
  if (needsApiServer) endpoints.push(...(options.apiServer ?? DEFAULT_API_SERVER));

  if (spec.alerts?.webhookUrl) endpoints.push(endpointOfUrl(spec.alerts.webhookUrl));
  else if (spec.alerts?.webhookUrlSecret) endpoints.push({ port: 443 });

  const rules = [
    dnsRule(options.dns ?? DEFAULT_DNS),
    ...endpoints.map((e) => ruleFor(e, options.clusterCidrs)),
  ];
  const seen = new Set<string>();
  const egress = rules.filter((rule) => {
    const key = JSON.stringify(rule);
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });

  return {
    apiVersion: 'networking.k8s.io/v1',
    kind: 'NetworkPolicy',
    metadata: childMetadata(policy),
    spec: { podSelector: cleanSelector(spec.podSelector), policyTypes: ['Egress'], egress },
  };
}
