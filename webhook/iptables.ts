// The capture rules of an agent pod's network namespace, in iptables-restore format, as a pure
// function of the config. Applied by chaperone-init with `iptables-restore --noflush` after it
// removed its previous jumps, so a re-run rebuilds the CHAPERONE_* chains and touches nothing else.
import { isIP } from 'node:net';

export const CHAIN = 'CHAPERONE_OUTPUT';

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
  /** DNS resolver addresses agents may reach on port 53; empty: any address. */
  dnsResolvers: readonly string[];
  redirects: readonly IptablesRedirect[];
}

export interface IptablesRules {
  ipv4: string;
  ipv6: string;
}

export function renderIptablesRules(options: IptablesOptions): IptablesRules {
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

  lines.push('*filter', `:${CHAIN} - [0:0]`, `-I OUTPUT 1 -j ${CHAIN}`);
  // Agents reach the sidecar over loopback. A REDIRECTed packet already has a loopback destination
  // but still shows its original output interface to this hook, hence the destination match too.
  lines.push(`-A ${CHAIN} -o lo -j ACCEPT`);
  lines.push(`-A ${CHAIN} -d ${family === 4 ? '127.0.0.0/8' : '::1/128'} -j ACCEPT`);
  lines.push(`-A ${CHAIN} ${sidecarOwner} -j ACCEPT`);
  // Replies on connections someone else opened to the pod (Service traffic, kubelet probes); never a
  // connection the agent opened, since those are refused at their first packet.
  lines.push(`-A ${CHAIN} -m conntrack --ctstate ESTABLISHED --ctdir REPLY -j ACCEPT`);
  if (family === 6) {
    // Neighbour discovery is sent by the kernel, owned by no socket: without it nothing reaches the
    // link, not even the sidecar.
    for (const type of ['neighbour-solicitation', 'neighbour-advertisement', 'router-solicitation']) {
      lines.push(`-A ${CHAIN} -p ipv6-icmp -m icmp6 --icmpv6-type ${type} -j ACCEPT`);
    }
  }
  const resolvers = options.dnsResolvers.filter((a) => isIP(a) === family);
  const dnsDestinations =
    options.dnsResolvers.length === 0 ? [''] : resolvers.map((a) => ` -d ${a}/${hostBits}`);
  for (const destination of dnsDestinations) {
    for (const proto of ['udp', 'tcp']) {
      lines.push(`-A ${CHAIN}${destination} -p ${proto} -m ${proto} --dport 53 -j ACCEPT`);
    }
  }
  // Fail closed: TCP gets a reset (fast, clear failure), everything else an ICMP unreachable.
  lines.push(`-A ${CHAIN} -p tcp -j REJECT --reject-with tcp-reset`);
  lines.push(
    `-A ${CHAIN} -j REJECT --reject-with ${family === 4 ? 'icmp-port-unreachable' : 'icmp6-port-unreachable'}`,
  );
  lines.push('COMMIT');
  return `${lines.join('\n')}\n`;
}
