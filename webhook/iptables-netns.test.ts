// The capture rules in real network namespaces: an agent UID cannot reach the upstream (TCP, UDP,
// IPv6), reaches it through a loopback relay run as the sidecar UID and through the transparent
// REDIRECT; the sidecar UID reaches it directly; inbound connections reach only the ports the
// policy opens (and the sidecar's admin port), over IPv4 and IPv6.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { captureEnv } from './init/capture.ts';
import { ENV } from './init/env.ts';
import { type IptablesOptions, renderIptablesRules } from './iptables.ts';
import { ADDRESSES, NetnsPair, type User } from './testing/netns.ts';

const exec = promisify(execFile);
const INIT = join(import.meta.dirname, 'init', 'main.ts');
const SIDECAR: User = { uid: 15999, gid: 15999 };
const AGENT: User = { uid: 1000, gid: 1000 };
const ROOT: User = { uid: 0, gid: 0 };

const canRun =
  process.getuid?.() === 0 &&
  (await exec('ip', ['netns', 'list']).then(
    () => true,
    () => false,
  ));

describe('capture rules in network namespaces', { skip: canRun ? false : 'needs root and ip netns' }, () => {
  const net = new NetnsPair();
  const options: IptablesOptions = {
    sidecarUid: SIDECAR.uid,
    sidecarGid: SIDECAR.gid,
    dnsResolvers: [ADDRESSES.upstream4],
    redirects: [{ host: ADDRESSES.upstream4, port: 7003, listenPort: 15001 }],
    adminPort: 15090,
    inboundPorts: [{ port: 8080, protocol: 'TCP' }],
  };
  const rules = renderIptablesRules(options);
  // As the webhook injects it: the rules' inputs, rendered by chaperone-init.
  const applyRules = () =>
    net.exec(net.pod, undefined, [process.execPath, INIT], { [ENV.capture]: captureEnv(options) });
  // The rules rendered by the webhook, the other way chaperone-init takes them.
  const applyRenderedRules = () =>
    net.exec(net.pod, undefined, [process.execPath, INIT], {
      [ENV.ipv4]: rules.ipv4,
      [ENV.ipv6]: rules.ipv6,
    });
  const save = async () => {
    const v4 = await net.exec(net.pod, undefined, ['iptables-save']);
    const v6 = await net.exec(net.pod, undefined, ['ip6tables-save']);
    return (v4.stdout + v6.stdout).replace(/^#.*\n/gm, '');
  };

  before(async () => {
    await net.setup();
    for (const host of [ADDRESSES.upstream4, ADDRESSES.upstream6]) {
      await net.serve(net.upstream, undefined, ['serve-tcp', host, '7001', 'db']);
      await net.serve(net.upstream, undefined, ['serve-tcp', host, '7003', 'direct-7003']);
      await net.serve(net.upstream, undefined, ['serve-udp', host, '7002']);
      await net.serve(net.upstream, undefined, ['serve-udp', host, '53']);
    }
    for (const host of [ADDRESSES.pod4, ADDRESSES.pod6]) {
      await net.serve(net.pod, AGENT, ['serve-tcp', host, '8080', 'agent-reply']);
      await net.serve(net.pod, AGENT, ['serve-tcp', host, '8081', 'agent-unopened']);
      await net.serve(net.pod, SIDECAR, ['serve-tcp', host, '15090', 'admin']);
    }
  });
  after(() => net.cleanup());

  it('without rules the agent reaches the upstream (the setup can tell)', async () => {
    assert.deepEqual(await net.tool(net.pod, AGENT, ['connect-tcp', ADDRESSES.upstream4, '7001']), {
      ok: true,
      data: 'db',
    });
    assert.deepEqual(await net.tool(net.pod, AGENT, ['send-udp', ADDRESSES.upstream6, '7002']), {
      ok: true,
      data: 'ping',
    });
    // The listener the rules will close answers from outside before they are applied.
    assert.deepEqual(await net.tool(net.upstream, AGENT, ['connect-tcp', ADDRESSES.pod6, '8081']), {
      ok: true,
      data: 'agent-unopened',
    });
  });

  it('chaperone-init applies the rules', async () => {
    const { stdout } = await applyRules();
    assert.match(stdout, /ipv4 capture rules applied/);
    assert.match(stdout, /ipv6 capture rules applied/);
    await net.serve(net.pod, SIDECAR, ['relay', '15001', ADDRESSES.upstream4, '7001']);
  });

  it('an agent UID cannot reach the upstream directly over TCP, UDP or IPv6', async () => {
    for (const user of [AGENT, ROOT]) {
      for (const host of [ADDRESSES.upstream4, ADDRESSES.upstream6]) {
        const tcp = await net.tool(net.pod, user, ['connect-tcp', host, '7001']);
        assert.deepEqual(tcp, { ok: false, code: 'ECONNREFUSED' }, `tcp ${host} as ${user.uid}`);
        const udp = await net.tool(net.pod, user, ['send-udp', host, '7002']);
        assert.equal(udp.ok, false, `udp ${host} as ${user.uid}: ${JSON.stringify(udp)}`);
      }
    }
  });

  it('an agent reaches the upstream through the sidecar UID relay on loopback', async () => {
    assert.deepEqual(await net.tool(net.pod, AGENT, ['connect-tcp', '127.0.0.1', '15001']), {
      ok: true,
      data: 'db',
    });
  });

  it('a transparent target is REDIRECTed to its listen port', async () => {
    // The upstream answers "direct-7003" on that port; the relay behind 15001 reaches port 7001 ("db").
    assert.deepEqual(await net.tool(net.pod, AGENT, ['connect-tcp', ADDRESSES.upstream4, '7003']), {
      ok: true,
      data: 'db',
    });
  });

  it('the sidecar UID reaches the upstream directly, unredirected, over TCP, UDP and IPv6', async () => {
    for (const host of [ADDRESSES.upstream4, ADDRESSES.upstream6]) {
      assert.deepEqual(await net.tool(net.pod, SIDECAR, ['connect-tcp', host, '7001']), {
        ok: true,
        data: 'db',
      });
      assert.deepEqual(await net.tool(net.pod, SIDECAR, ['send-udp', host, '7002']), {
        ok: true,
        data: 'ping',
      });
    }
    assert.deepEqual(await net.tool(net.pod, SIDECAR, ['connect-tcp', ADDRESSES.upstream4, '7003']), {
      ok: true,
      data: 'direct-7003',
    });
  });

  it('the sidecar UID with another GID is an agent', async () => {
    const tcp = await net.tool(net.pod, { uid: SIDECAR.uid, gid: AGENT.gid }, [
      'connect-tcp',
      ADDRESSES.upstream4,
      '7001',
    ]);
    assert.deepEqual(tcp, { ok: false, code: 'ECONNREFUSED' });
  });

  it('DNS reaches the configured resolver only', async () => {
    assert.deepEqual(await net.tool(net.pod, AGENT, ['send-udp', ADDRESSES.upstream4, '53']), {
      ok: true,
      data: 'ping',
    });
    // The IPv6 address of the upstream is not a configured resolver.
    const v6 = await net.tool(net.pod, AGENT, ['send-udp', ADDRESSES.upstream6, '53']);
    assert.equal(v6.ok, false);
  });

  it('inbound connections reach the ports the policy opens and the admin port, and their replies flow', async () => {
    for (const host of [ADDRESSES.pod4, ADDRESSES.pod6]) {
      assert.deepEqual(await net.tool(net.upstream, AGENT, ['connect-tcp', host, '8080']), {
        ok: true,
        data: 'agent-reply',
      });
      assert.deepEqual(await net.tool(net.upstream, AGENT, ['connect-tcp', host, '15090']), {
        ok: true,
        data: 'admin',
      });
    }
  });

  it('inbound connections to any other agent listener are refused, IPv4 and IPv6', async () => {
    for (const host of [ADDRESSES.pod4, ADDRESSES.pod6]) {
      assert.deepEqual(await net.tool(net.upstream, AGENT, ['connect-tcp', host, '8081']), {
        ok: false,
        code: 'ECONNREFUSED',
      });
    }
  });

  it('a re-run rebuilds the same chains and jumps, nothing doubled', async () => {
    const first = await save();
    await applyRules();
    await applyRules();
    const again = await save();
    assert.equal(again, first);
    // The rules rendered by the webhook and those chaperone-init renders from their inputs are the same.
    await applyRenderedRules();
    assert.equal(await save(), first);
    assert.equal(first.match(/-A OUTPUT -j CHAPERONE_OUTPUT/g)?.length, 4, 'one jump per table and family');
    assert.equal(first.match(/-A INPUT -j CHAPERONE_INPUT/g)?.length, 2, 'one INPUT jump per family');
  });
});
