// The capture inputs chaperone-init reads: the rules it renders from them are the webhook's, and
// anything but well-formed inputs is refused (the pod then never starts).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type IptablesOptions, renderIptablesRules } from '../iptables.ts';
import { captureEnv, rulesFromCaptureEnv } from './capture.ts';

const options: IptablesOptions = {
  sidecarUid: 15999,
  sidecarGid: 15999,
  dnsResolvers: ['10.96.0.10', 'fd00::a'],
  redirects: [
    { host: '10.0.0.50', port: 5432, listenPort: 15432 },
    { host: 'fd00::50', port: 5432, listenPort: 15432 },
  ],
  adminPort: 15090,
  inboundPorts: [
    { port: 8080, protocol: 'TCP' },
    { port: 5353, protocol: 'UDP' },
  ],
};

describe('chaperone-init capture inputs', () => {
  it('renders from the inputs exactly the rules the webhook renders', () => {
    assert.deepEqual(rulesFromCaptureEnv(captureEnv(options)), renderIptablesRules(options));
  });

  it('is a fraction of the rules in the pod spec', () => {
    const rules = renderIptablesRules(options);
    assert.ok(captureEnv(options).length * 5 < rules.ipv4.length + rules.ipv6.length);
  });

  it('refuses anything but well-formed inputs', () => {
    const json = JSON.parse(captureEnv(options));
    const refused: Array<[string, unknown]> = [
      ['not JSON', 'rules'],
      [
        'a host that is no IP address (an injected line)',
        { ...json, redirects: [{ host: '10.0.0.1/0 -j ACCEPT\n-A', port: 1, listenPort: 2 }] },
      ],
      ['a resolver that is no IP address', { ...json, dnsResolvers: ['dns.example'] }],
      ['no resolver', { ...json, dnsResolvers: [] }],
      ['a port out of range', { ...json, adminPort: 70000 }],
      ['a port that is a string', { ...json, adminPort: '15090' }],
      ['another protocol', { ...json, inboundPorts: [{ port: 1, protocol: 'SCTP' }] }],
      ['an unknown field', { ...json, extra: true }],
      ['a missing field', { ...json, sidecarGid: undefined }],
    ];
    for (const [why, value] of refused) {
      assert.throws(
        () => rulesFromCaptureEnv(typeof value === 'string' ? value : JSON.stringify(value)),
        /./,
        why,
      );
    }
  });
});
