import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { renderIptablesRules } from './iptables.ts';
import { assertGolden } from './testing/golden.ts';

describe('renderIptablesRules', () => {
  it('renders the default rules (DNS to any resolver, no transparent target)', async () => {
    const rules = renderIptablesRules({
      sidecarUid: 15999,
      sidecarGid: 15999,
      dnsResolvers: [],
      redirects: [],
    });
    await assertGolden('iptables-default.v4.rules', rules.ipv4);
    await assertGolden('iptables-default.v6.rules', rules.ipv6);
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
      dnsResolvers: [],
      redirects: [],
    });
    const filter = ipv4.slice(ipv4.indexOf('*filter')).split('\n');
    const owner = filter.findIndex((l) => l.includes('--uid-owner 15999') && l.endsWith('-j ACCEPT'));
    const firstReject = filter.findIndex((l) => l.includes('-j REJECT'));
    assert.ok(owner > 0 && owner < firstReject);
    assert.match(filter.at(-3)!, /^-A CHAPERONE_OUTPUT -j REJECT/);
  });
});
