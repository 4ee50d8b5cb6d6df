// The session core on its own, with the real verifier (a local token issuer), the real recorder
// (a file:// store read back) and an approvals backend decided by the test: what a gateway gets
// from login and from the command decision, and what each records.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { pino } from 'pino';
import { type LocalIssuer, startLocalIssuer } from '../identity/testing/local-issuer.ts';
import { createIdentityVerifier } from '../identity/verifier.ts';
import { createManualApprovalBackend } from '../policy/approvals/testing/manual.ts';
import { createMetrics } from '../server/metrics.ts';
import {
  type Alert,
  generateSigningKey,
  openRecorder,
  openStore,
  type Recorder,
  readSession,
} from '../server/modules.ts';
import { CommandDecider, type CoreRuntime, SessionCore } from './index.ts';

const logger = pino({ level: 'silent' });
const pod = { serviceAccount: 'agent', pod: 'agent-0', namespace: 'agents', node: 'n1', podUid: 'u1' };

describe('session core', () => {
  let dir: string;
  let issuer: LocalIssuer;
  let recorder: Recorder;
  let storeUrl: string;
  const alerts: Alert[] = [];
  const approvals = createManualApprovalBackend();
  let rt: CoreRuntime;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'chaperone-core-'));
    issuer = await startLocalIssuer(undefined, { closeWithTest: false });
    storeUrl = `file://${join(dir, 'store')}`;
    const key = generateSigningKey();
    recorder = await openRecorder({
      spoolDir: join(dir, 'spool'),
      store: storeUrl,
      signingKey: key.privateKeyPem,
      keyId: key.keyId,
      seal: { maxMs: 50 },
      logger,
    });
    rt = {
      target: { name: 'host', upstream: { host: '10.0.0.1', port: 22 } },
      policy: { name: 'p', namespace: 'agents', generation: 1 },
      verifier: createIdentityVerifier(
        {
          tokenRequired: true,
          deniedSubjects: ['mallory'],
          clockSkewSeconds: 30,
          issuers: [{ issuer: issuer.issuer, audiences: ['chaperone'], kubernetes: false }],
        },
        { pod, logger },
      ),
      approvals,
      approvalTimeoutMs: 10_000,
      alerts: { send: (a: Alert) => alerts.push(a), close: async () => undefined } as never,
    };
  });
  after(async () => {
    rt.verifier.close();
    await recorder.close();
    await issuer.close();
    await rm(dir, { recursive: true, force: true });
  });

  const services = () => ({ recorder, pod, logger, metrics: createMetrics(), sidecarVersion: 'test' });
  /** The session's events once it is uploaded whole (sealed segments reach the store in the background). */
  const events = async (id: string) => {
    for (let attempt = 0; ; attempt++) {
      const out: { kind: string; payload: Record<string, unknown> }[] = [];
      try {
        for await (const e of readSession(openStore(storeUrl), id)) out.push(e as never);
      } catch (err) {
        if (attempt > 200) throw err;
      }
      if (out.at(-1)?.kind === 'session.end') return out;
      if (attempt > 200) throw new Error(`session ${id} not complete in the store`);
      await new Promise((r) => setTimeout(r, 50));
    }
  };
  const loggedIn = async () => {
    const core = new SessionCore('ssh', '127.0.0.1:1', () => rt, services());
    const r = await core.login({
      token: await issuer.sign({ sub: 'alice', aud: 'chaperone' }),
      readCredentials: async () => ({ user: 'up' }),
      labels: (c) => ({ 'ssh.upstreamUser': c.user }),
      maxPendingAppends: 100,
      onRecordingFailure: () => assert.fail('recording failed'),
      live: () => true,
    });
    assert.equal(r.kind, 'ok');
    return core;
  };

  it('login: a valid token starts a recording whose header binds identity, target and policy', async () => {
    const core = await loggedIn();
    const id = core.rec!.sessionId!;
    await core.end('done');
    const [header] = await events(id);
    const p = header!.payload as {
      identity: { subject: string; pod: string };
      target: { name: string };
      labels: Record<string, string>;
      protocol: string;
    };
    assert.equal(p.protocol, 'ssh');
    assert.equal(p.identity.subject, 'alice');
    assert.equal(p.identity.pod, 'agent-0');
    assert.equal(p.target.name, 'host');
    assert.deepEqual(p.labels, { 'ssh.upstreamUser': 'up' });
  });

  it('recording channel: held appends follow the read in order; an urgent one goes after them; end releases', async () => {
    const core = await loggedIn();
    const rec = core.rec!;
    const id = rec.sessionId!;
    rec.hold();
    assert.equal(rec.add('test.held', 'server', { n: 1 }), undefined, 'a held append is not encoded yet');
    rec.add('test.held', 'server', { n: 2 });
    await rec.durable('test.urgent', 'client', { n: 3 });
    rec.add('test.held', 'server', { n: 4 }); // still held after the urgent one
    rec.release();
    rec.hold();
    rec.add('test.held', 'server', { n: 5 }); // held when the session ends
    await core.end('done');
    const got = (await events(id)).filter((e) => e.kind.startsWith('test.'));
    assert.deepEqual(
      got.map((e) => [e.kind, e.payload.n]),
      [
        ['test.held', 1],
        ['test.held', 2],
        ['test.urgent', 3],
        ['test.held', 4],
        ['test.held', 5],
      ],
    );
    assert.equal(rec.counts['test.held'], 4);
  });

  it('login: a denied subject is refused, alerted, and recorded as a session of its own', async () => {
    const core = new SessionCore('ssh', '127.0.0.1:2', () => rt, services());
    const before = alerts.length;
    const r = await core.login({
      token: await issuer.sign({ sub: 'mallory', aud: 'chaperone' }),
      readCredentials: () => assert.fail('no credentials for a refused identity'),
      labels: () => ({}),
      refusedLabels: { 'ssh.user': 'x' },
      maxPendingAppends: 100,
      onRecordingFailure: () => undefined,
      live: () => true,
    });
    assert.equal(r.kind, 'denied');
    assert.equal(alerts[before]?.kind, 'deniedSubject');
    assert.match(alerts[before]!.message, /^ssh session refused/);
    assert.equal(core.rec, undefined);
  });

  it('login: missing credentials and a departed agent stop the login', async () => {
    const token = await issuer.sign({ sub: 'alice', aud: 'chaperone' });
    const base = { token, labels: () => ({}), maxPendingAppends: 100, onRecordingFailure: () => undefined };
    const noCreds = await new SessionCore('ssh', 's', () => rt, services()).login({
      ...base,
      readCredentials: () => Promise.reject(new Error('gone')),
      live: () => true,
    });
    assert.deepEqual(noCreds, {
      kind: 'noCredentials',
      message: 'chaperone: upstream credentials for target host are unavailable',
    });
    const gone = await new SessionCore('ssh', 's', () => rt, services()).login({
      ...base,
      readCredentials: async () => ({}),
      live: () => false,
    });
    assert.equal(gone.kind, 'gone');
  });

  it('decision: allow forwards, alert forwards and records, block refuses with the rule', async () => {
    const core = await loggedIn();
    const d = new CommandDecider(core);
    const cmd = (text: string) => ({ text, noun: 'command', named: {}, detail: { channel: '1' } });
    assert.equal(d.decide({ action: 'allow' }, cmd('ls')), undefined);
    assert.equal(d.decide({ action: 'alert', rule: 'watch' }, cmd('sudo -l')), undefined);
    assert.equal(
      d.decide({ action: 'block', rule: 'no-rm', message: 'never' }, cmd('rm -rf /')),
      'chaperone: command blocked by rule no-rm: never',
    );
    const id = core.rec!.sessionId!;
    await core.end('done');
    const evs = await events(id);
    assert.deepEqual(
      evs
        .filter((e) => e.kind.startsWith('policy.'))
        .map((e) => [e.kind, e.payload.rule, e.payload.command ?? null]),
      [
        ['policy.alert', 'watch', null],
        ['policy.blocked', 'no-rm', 'rm -rf /'],
      ],
    );
    assert.ok(alerts.some((a) => a.kind === 'blocked' && a.statement === 'rm -rf /'));
  });

  it('decision: requireApproval waits for the reviewer; a denial and a cancel refuse', async () => {
    const core = await loggedIn();
    const d = new CommandDecider(core);
    const cmd = { text: 'deploy', noun: 'command', named: {}, detail: {} };
    const approved = d.decide({ action: 'requireApproval', rule: 'ask' }, cmd) as Promise<string | undefined>;
    const first = await approvals.nextRequest();
    assert.equal(first.protocol, 'ssh');
    assert.equal(first.statement, 'deploy');
    assert.equal(d.awaitingApproval, true);
    approvals.decide(first.id, { approved: true, approver: 'bob' });
    assert.equal(await approved, undefined);

    const denied = d.decide({ action: 'requireApproval', rule: 'ask' }, cmd) as Promise<string | undefined>;
    approvals.decide((await approvals.nextRequest()).id, { approved: false, approver: 'bob', reason: 'no' });
    assert.equal(await denied, 'chaperone: command denied under approval rule ask by bob: no');

    const canceled = d.decide({ action: 'requireApproval', rule: 'ask' }, cmd) as Promise<string | undefined>;
    await approvals.nextRequest();
    assert.equal(d.cancelApproval(), true);
    assert.equal(await canceled, 'chaperone: command denied under approval rule ask: canceled by the agent');
    const id = core.rec!.sessionId!;
    await core.end('done');
    const kinds = (await events(id)).map((e) => e.kind).filter((k) => k.startsWith('approval.'));
    assert.deepEqual(kinds, [
      'approval.requested',
      'approval.granted',
      'approval.requested',
      'approval.denied',
      'approval.requested',
      'approval.denied',
    ]);
  });
});
