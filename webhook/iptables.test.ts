import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { NoDnsResolverError, renderIptablesRules } from './iptables.ts';
import { assertGolden } from './testing/golden.ts';

describe('renderIptablesRules', () => {
  it('renders the default rules (one IPv4 resolver, no transparent target, admin port only inbound)', async () => {
    const rules = renderIptablesRules({
      sidecarUid: 15999,
      sidecarGid: 15999,
      dnsResolvers: ['10.96.0.10'],
      redirects: [],
      adminPort: 15090,
      inboundPorts: [],
    });
    await assertGolden('iptables-default.v4.rules', rules.ipv4);
    await assertGolden('iptables-default.v6.rules', rules.ipv6);
    // No IPv6 resolver: no IPv6 DNS at all, never port 53 to any address.
    assert.doesNotMatch(rules.ipv6, /--dport 53/);
  });

  it('refuses to render without a resolver instead of opening port 53 to every address', () => {
    assert.throws(
      () =>
        renderIptablesRules({
          sidecarUid: 15999,
          sidecarGid: 15999,
          dnsResolvers: [],
          redirects: [],
          adminPort: 15090,
          inboundPorts: [],
        }),
      NoDnsResolverError,
    );
  });

  it('renders resolvers and transparent redirects per address family', async () => {
    const rules = renderIptablesRules({
      sidecarUid: 20001,
      sidecarGid: 20002,
      dnsResolvers: ['10.96.0.10', 'fd00:10:96::a'],
      redirects: [
        { host: '10.20.30.40', port: 5432, listenPort: 15432 },
        { host: 'fd00:db::5', port: 22, listenPort: 15022 },
      ],
      adminPort: 15091,
      inboundPorts: [
        { port: 8080, protocol: 'TCP' },
        { port: 5353, protocol: 'UDP' },
        { port: 15091, protocol: 'TCP' },
      ],
    });
    await assertGolden('iptables-transparent.v4.rules', rules.ipv4);
    await assertGolden('iptables-transparent.v6.rules', rules.ipv6);
    assert.doesNotMatch(rules.ipv4, /fd00/);
    assert.doesNotMatch(rules.ipv6, /10\.20\.30\.40|10\.96\.0\.10/);
  });

  it('accepts the sidecar before any REJECT and ends with REJECT', () => {
    const { ipv4 } = renderIptablesRules({
      sidecarUid: 15999,
      sidecarGid: 15999,
      dnsResolvers: ['10.96.0.10'],
      redirects: [],
      adminPort: 15090,
      inboundPorts: [],
    });
    const filter = ipv4.slice(ipv4.indexOf('*filter')).split('\n');
    const output = filter.filter((l) => l.startsWith('-A CHAPERONE_OUTPUT'));
    const owner = output.findIndex((l) => l.includes('--uid-owner 15999') && l.endsWith('-j ACCEPT'));
    const firstReject = output.findIndex((l) => l.includes('-j REJECT'));
    assert.ok(owner > 0 && owner < firstReject);
    assert.match(output.at(-1)!, /^-A CHAPERONE_OUTPUT -j REJECT/);
    const input = filter.filter((l) => l.startsWith('-A CHAPERONE_INPUT'));
    assert.match(input.at(-1)!, /^-A CHAPERONE_INPUT -j REJECT/);
  });
});
