// Guardrails on ssh targets with the real sshd: a blocked exec or shell line never reaches the host,
// the agent reads why, approvals pause the command until a reviewer decides.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { access, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { testEnv } from '../../test/env/index.ts';
import { decideLocalApproval, listPendingLocalApprovals } from '../server/modules.ts';
import { scpPaths } from './scp.ts';
import { kinds, type SshHarness, startSshHarness, streamText } from './testing/harness.ts';

const { sshd } = await testEnv(['sshd']);

const exists = (path: string) =>
  access(path).then(
    () => true,
    () => false,
  );

async function canary(): Promise<string> {
  const path = join(sshd.homeDir, `canary-${randomBytes(6).toString('hex')}`);
  await writeFile(path, 'still here\n');
  return path;
}

async function pendingApproval(dir: string) {
  for (let i = 0; i < 200; i++) {
    const [p] = await listPendingLocalApprovals(dir);
    if (p) return p;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error('no approval request appeared');
}

describe('ssh guardrails', () => {
  let h: SshHarness;
  before(async () => {
    h = await startSshHarness(sshd, {
      config: {
        guardrails: [
          {
            name: 'no-rm-rf',
            match: { commandPattern: 'rm\\s+-[a-z]*r[a-z]*f' },
            action: 'block',
            message: 'recursive forced removal is not allowed',
          },
          { name: 'approve-deploy', match: { commandPattern: '^deploy-' }, action: 'requireApproval' },
          { name: 'no-shadow', match: { pathPattern: '^/etc/shadow' }, action: 'block' },
        ],
      },
    });
  });
  after(() => h.close());

  test('a blocked exec never reaches the host: the agent reads the rule, exit status 126', async () => {
    const file = await canary();
    const r = await h.ssh(['agent@127.0.0.1', `rm -rf ${file}`]);
    assert.equal(r.code, 126);
    assert.match(
      r.stderr,
      /chaperone: command blocked by rule no-rm-rf: recursive forced removal is not allowed/,
    );
    assert.ok(await exists(file), 'the file is still there');
    const events = await h.waitForSession((evs) =>
      kinds(evs, 'policy.blocked').some((e) => String(e.payload.command).includes(file)),
    );
    assert.ok(kinds(events, 'policy.blocked').some((e) => e.payload.rule === 'no-rm-rf'));
    assert.deepEqual(
      kinds(events, 'terminal.exit').map((e) => e.payload.code),
      [126],
    );
  });

  test('a blocked shell line (PTY) is discarded; the lines after it run', async () => {
    const file = await canary();
    const marker = randomBytes(6).toString('hex');
    const r = await h.ssh(['-tt', 'agent@127.0.0.1'], {
      stdin: `rm -rf ${file}\necho after-${marker}\nexit\n`,
    });
    assert.equal(r.code, 0, r.stderr);
    assert.ok(await exists(file), 'the file is still there');
    assert.match(r.stderr + r.stdout, /command blocked by rule no-rm-rf/);
    assert.match(r.stdout, new RegExp(`after-${marker}`));
    const events = await h.waitForSession((evs) =>
      kinds(evs, 'ssh.command').some((e) => String(e.payload.command).includes(marker)),
    );
    assert.deepEqual(
      kinds(events, 'policy.blocked')
        .filter((e) => e.payload.rule !== 'ssh-env')
        .map((e) => [e.payload.rule, e.payload.command]),
      [['no-rm-rf', `rm -rf ${file}`]],
    );
  });

  test('a blocked line without a PTY is held back, never written upstream', async () => {
    const file = await canary();
    const marker = randomBytes(6).toString('hex');
    const r = await h.ssh(['agent@127.0.0.1'], { stdin: `rm -rf ${file}\necho after-${marker}\n` });
    assert.ok(await exists(file), 'the file is still there');
    assert.match(r.stderr, /command blocked by rule no-rm-rf/);
    assert.equal(r.stdout, `after-${marker}\n`);
  });

  test('requireApproval pauses an exec until approved, and a denied one never runs', async () => {
    const marker = randomBytes(6).toString('hex');
    const approved = h.ssh(['agent@127.0.0.1', `deploy-${marker}() { echo deployed; }; deploy-${marker}`]);
    const first = await pendingApproval(h.approvalsDir);
    assert.equal(first.rule, 'approve-deploy');
    assert.equal(first.protocol, 'ssh');
    await decideLocalApproval(h.approvalsDir, first.id, { approved: true, approver: 'bob@example.com' });
    const r = await approved;
    // The exec text starts with deploy-: the guard sees the whole command line.
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, 'deployed\n');

    const file = await canary();
    const denied = h.ssh(['agent@127.0.0.1', `deploy-x; rm ${file}`]);
    const second = await pendingApproval(h.approvalsDir);
    await decideLocalApproval(h.approvalsDir, second.id, {
      approved: false,
      approver: 'bob@example.com',
      reason: 'not today',
    });
    const d = await denied;
    assert.equal(d.code, 126);
    assert.match(d.stderr, /command denied under approval rule approve-deploy by bob@example.com: not today/);
    assert.ok(await exists(file));
    const events = await h.waitForSession((evs) => kinds(evs, 'approval.denied').length > 0);
    assert.equal(kinds(events, 'approval.denied')[0]!.payload.approver, 'bob@example.com');
  });

  test('an approval pauses a shell line; input typed meanwhile waits behind it', async () => {
    const marker = randomBytes(6).toString('hex');
    const run = h.ssh(['-tt', 'agent@127.0.0.1'], {
      stdin: `deploy-${marker}() { echo ran-${marker}; }\necho queued-${marker}\nexit\n`,
    });
    const p = await pendingApproval(h.approvalsDir);
    await decideLocalApproval(h.approvalsDir, p.id, { approved: true, approver: 'bob@example.com' });
    const r = await run;
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`queued-${marker}`));
    const events = await h.waitForSession((evs) =>
      kinds(evs, 'ssh.command').some((e) => String(e.payload.command).includes(`queued-${marker}`)),
    );
    const order = events
      .filter(
        (e) =>
          e.kind === 'approval.granted' ||
          (e.kind === 'terminal.input' &&
            Buffer.from(String(e.payload.data), 'base64').includes(`queued-${marker}`)),
      )
      .map((e) => e.kind);
    assert.deepEqual(order.slice(0, 2), ['approval.granted', 'terminal.input']);
    assert.match(streamText(events, 'terminal.output', 'stdout'), new RegExp(`queued-${marker}`));
  });

  test('pathPattern refuses sftp reads of /etc/shadow, also spelled with ..', async () => {
    const r = await h.run('sftp', ['-P', String(h.port), 'agent@127.0.0.1'], {
      stdin: 'get /etc/shadow /dev/null\nget ../../etc/shadow /dev/null\nget ../../etc//./shadow /dev/null\n',
    });
    assert.match(r.stderr, /Permission denied|chaperone/);
    const events = await h.waitForSession(
      (evs) => kinds(evs, 'policy.blocked').filter((e) => e.payload.rule === 'no-shadow').length >= 3,
    );
    const blocked = kinds(events, 'policy.blocked').filter((e) => e.payload.rule === 'no-shadow');
    for (const e of blocked) assert.deepEqual(e.payload.paths, ['/etc/shadow']);
  });
});

describe('legacy scp (-O) paths', () => {
  let h: SshHarness;
  before(async () => {
    h = await startSshHarness(sshd, {
      config: {
        guardrails: [{ name: 'no-shadow', match: { pathPattern: '^/etc/shadow' }, action: 'block' }],
      },
    });
  });
  after(() => h.close());

  test('scp -O from a refused path fails and never runs upstream; an allowed copy works', async () => {
    const local = join(h.dir, 'x');
    const r = await h.run('scp', ['-O', '-P', String(h.port), 'agent@127.0.0.1:../../etc/shadow', local]);
    assert.notEqual(r.code, 0);
    await assert.rejects(access(local));
    const events = await h.waitForSession((evs) =>
      kinds(evs, 'policy.blocked').some((e) => e.payload.rule === 'no-shadow'),
    );
    const blocked = kinds(events, 'policy.blocked').find((e) => e.payload.rule === 'no-shadow')!;
    assert.deepEqual(blocked.payload.paths, ['/etc/shadow']);
    const name = `legacy-${randomBytes(4).toString('hex')}`;
    await writeFile(join(h.dir, name), 'legacy scp\n');
    const ok = await h.run('scp', ['-O', '-P', String(h.port), join(h.dir, name), `agent@127.0.0.1:${name}`]);
    assert.equal(ok.code, 0, ok.stderr);
    assert.equal(await readFile(join(sshd.homeDir, name), 'utf8'), 'legacy scp\n');
  });

  test('scp command lines the sidecar cannot read are refused when path rules exist', () => {
    assert.deepEqual(scpPaths('scp -t -- docs/a.txt'), ['docs/a.txt']);
    assert.deepEqual(scpPaths('scp -r -d -t /tmp'), ['/tmp']);
    assert.equal(scpPaths('scp -f "/etc/sha"dow'), 'unparsable');
    assert.equal(scpPaths('scp -f /etc/*'), 'unparsable');
    assert.equal(scpPaths('scp -x -f a'), 'unparsable');
    assert.equal(scpPaths('ls -t'), undefined);
    assert.equal(scpPaths('scp a b'), undefined);
  });
});
