// The capture rules of an agent pod's network namespace, in iptables-restore format, as a pure
// function of the config. Applied by chaperone-init with `iptables-restore --noflush` after it
// removed its previous jumps, so a re-run rebuilds the CHAPERONE_* chains and touches nothing else.
// Outbound: only the sidecar, loopback and DNS to the cluster resolver. Inbound: only loopback,
// replies, the sidecar's admin port and the ports the SessionPolicy opens.
import { isIP } from 'node:net';

export const CHAIN = 'CHAPERONE_OUTPUT';
export const INPUT_CHAIN = 'CHAPERONE_INPUT';

/** No resolver address known: rendering would have to open port 53 to every address (a tunnel). */
export class NoDnsResolverError extends Error {
  override name = 'NoDnsResolverError';
  constructor() {
    super(
      'no cluster DNS resolver address is known (webhook config dns.resolvers is empty and dns.discoverService found none), and opening port 53 to every address would be a way out of the pod',
    );
  }
}

export interface InboundPort {
  port: number;
  protocol: 'TCP' | 'UDP';
}

export interface IptablesRedirect {
  /** Upstream IP address (v4 or v6) of a transparent target. */
  host: string;
  port: number;
  /** Loopback port of the sidecar for that target. */
  listenPort: number;
}

export interface IptablesOptions {
  sidecarUid: number;
  sidecarGid: number;
  /** DNS resolver addresses agents may reach on port 53; at least one (else NoDnsResolverError). */
  dnsResolvers: readonly string[];
  redirects: readonly IptablesRedirect[];
  /** The sidecar's admin port (kubelet probes it from the node). */
  adminPort: number;
  /** Ports the SessionPolicy opens to new inbound connections. */
  inboundPorts: readonly InboundPort[];
}

export interface IptablesRules {
  ipv4: string;
  ipv6: string;
}

export function renderIptablesRules(options: IptablesOptions): IptablesRules {
  if (options.dnsResolvers.length === 0) throw new NoDnsResolverError();
  return { ipv4: renderFamily(options, 4), ipv6: renderFamily(options, 6) };
}

function renderFamily(options: IptablesOptions, family: 4 | 6): string {
  const { sidecarUid, sidecarGid } = options;
  const hostBits = family === 4 ? 32 : 128;
  // Both must match: an agent would need the sidecar's UID and GID to pass (the webhook refuses either).
  const sidecarOwner = `-m owner --uid-owner ${sidecarUid} --gid-owner ${sidecarGid}`;
  const lines: string[] = [`# chaperone capture rules (IPv${family}); sidecar ${sidecarUid}:${sidecarGid}`];

  lines.push('*nat', `:${CHAIN} - [0:0]`, `-I OUTPUT 1 -j ${CHAIN}`);
  // The sidecar's own connections to the upstream must not be redirected back to itself.
  lines.push(`-A ${CHAIN} ${sidecarOwner} -j RETURN`);
  for (const r of options.redirects) {
    if (isIP(r.host) !== family) continue;
    lines.push(
      `-A ${CHAIN} -d ${r.host}/${hostBits} -p tcp -m tcp --dport ${r.port} -j REDIRECT --to-ports ${r.listenPort}`,
    );
  }
  lines.push('COMMIT');

  lines.push('*filter', `:${CHAIN} - [0:0]`, `:${INPUT_CHAIN} - [0:0]`);
  lines.push(`-I OUTPUT 1 -j ${CHAIN}`, `-I INPUT 1 -j ${INPUT_CHAIN}`);
  // Agents reach the sidecar over loopback. A REDIRECTed packet already has a loopback destination
  // but still shows its original output interface to this hook, hence the destination match too.
  lines.push(`-A ${CHAIN} -o lo -j ACCEPT`);
  lines.push(`-A ${CHAIN} -d ${family === 4 ? '127.0.0.0/8' : '::1/128'} -j ACCEPT`);
  lines.push(`-A ${CHAIN} ${sidecarOwner} -j ACCEPT`);
  // Replies on connections someone else opened to the pod (the admin port, the ports the policy
  // opens), and the resets and ICMP errors the INPUT rules answer refused ones with (RELATED, in
  // the reply direction); never a connection the agent opened, refused at its first packet.
  lines.push(`-A ${CHAIN} -m conntrack --ctstate ESTABLISHED,RELATED --ctdir REPLY -j ACCEPT`);
  if (family === 6) {
    // Neighbour discovery is sent by the kernel, owned by no socket: without it nothing reaches the
    // link, not even the sidecar.
    for (const type of ['neighbour-solicitation', 'neighbour-advertisement', 'router-solicitation']) {
      lines.push(`-A ${CHAIN} -p ipv6-icmp -m icmp6 --icmpv6-type ${type} -j ACCEPT`);
    }
  }
  // Only the resolvers of this family: a family without one gets no DNS at all.
  for (const resolver of options.dnsResolvers.filter((a) => isIP(a) === family)) {
    for (const proto of ['udp', 'tcp']) {
      lines.push(`-A ${CHAIN} -d ${resolver}/${hostBits} -p ${proto} -m ${proto} --dport 53 -j ACCEPT`);
    }
  }
  // Fail closed: TCP gets a reset (fast, clear failure), everything else an ICMP unreachable.
  lines.push(`-A ${CHAIN} -p tcp -j REJECT --reject-with tcp-reset`);
  lines.push(
    `-A ${CHAIN} -j REJECT --reject-with ${family === 4 ? 'icmp-port-unreachable' : 'icmp6-port-unreachable'}`,
  );
  lines.push(...inputRules(options, family));
  lines.push('COMMIT');
  return `${lines.join('\n')}\n`;
}

/**
 * New connections into the pod: an agent that listens could be driven from outside (a channel that
 * never passes the sidecar), so only loopback, replies to connections the pod opened, the sidecar's
 * admin port and the ports the policy opens are accepted (chain declared with the *filter table).
 */
function inputRules(options: IptablesOptions, family: 4 | 6): string[] {
  const lines = [`-A ${INPUT_CHAIN} -i lo -j ACCEPT`];
  lines.push(`-A ${INPUT_CHAIN} -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT`);
  if (family === 6) {
    for (const type of ['neighbour-solicitation', 'neighbour-advertisement', 'router-advertisement']) {
      lines.push(`-A ${INPUT_CHAIN} -p ipv6-icmp -m icmp6 --icmpv6-type ${type} -j ACCEPT`);
    }
  }
  const open = [{ port: options.adminPort, protocol: 'TCP' as const }, ...options.inboundPorts];
  const seen = new Set<string>();
  for (const { port, protocol } of open) {
    const proto = protocol.toLowerCase();
    if (seen.has(`${proto}/${port}`)) continue;
    seen.add(`${proto}/${port}`);
    lines.push(`-A ${INPUT_CHAIN} -p ${proto} -m ${proto} --dport ${port} -j ACCEPT`);
  }
  lines.push(`-A ${INPUT_CHAIN} -p tcp -j REJECT --reject-with tcp-reset`);
  lines.push(
    `-A ${INPUT_CHAIN} -j REJECT --reject-with ${family === 4 ? 'icmp-port-unreachable' : 'icmp6-port-unreachable'}`,
  );
  return lines;
}
