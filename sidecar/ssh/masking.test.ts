// Masking of ssh output (ssh.maskOutput): the masker across chunk boundaries with a real detector
// set, then the real sshd and OpenSSH clients: exec, a PTY shell and stderr are masked in what the
// agent reads and what is recorded; files moved by scp and sftp arrive byte for byte.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { testEnv } from '../../test/env/index.ts';
import { createMasker, PG_TYPE } from '../policy/index.ts';
import { HOLD_MAX, holdFrom, type MaskedChunk, OutputMasker } from './output-mask.ts';
import { kinds, type SshHarness, startSshHarness, streamText } from './testing/harness.ts';

const CARD = '4111 1111 1111 1111';
const masking = {
  columns: [],
  detectors: [
    { type: 'creditCard' as const, strategy: 'redact' as const },
    { type: 'email' as const, strategy: 'redact' as const },
  ],
  keepOriginals: false,
};
const row = () =>
  createMasker(masking).forColumns([{ name: 'terminal', dataTypeID: PG_TYPE.text, format: 'text' }]);

function collector(holdMs = 10) {
  const chunks: MaskedChunk[] = [];
  let wake: (() => void) | undefined;
  const m = new OutputMasker(
    row(),
    (c) => {
      chunks.push(c);
      wake?.();
    },
    holdMs,
  );
  const text = () => Buffer.concat(chunks.map((c) => c.data)).toString();
  /** Resolves when the emitted text satisfies `ok` (the hold timer is what emits it). */
  const until = (ok: (t: string) => boolean) =>
    new Promise<void>((resolve) => {
      wake = () => {
        if (ok(text())) resolve();
      };
      wake();
    });
  return { m, chunks, text, until };
}

describe('OutputMasker', () => {
  test('a card number split over two chunks is masked; text around it passes unchanged', () => {
    const c = collector();
    c.m.push(Buffer.from('paid: 4111 1111 '));
    assert.equal(c.text(), 'paid:', 'the possible start of a value is held back');
    c.m.push(Buffer.from('1111 1111 yesterday\n$ '));
    c.m.flush();
    assert.doesNotMatch(c.text(), /4111|1111 1111/);
    assert.equal(c.text(), 'paid: **** yesterday\n$ ');
    assert.equal(c.chunks.filter((x) => x.original).length, 1);
    assert.match(String(c.chunks.find((x) => x.original)!.original), /4111 1111 1111 1111/);
  });

  test('an email split in the middle of its domain is masked', () => {
    const c = collector();
    c.m.push(Buffer.from('owner: alice.smith@exam'));
    c.m.push(Buffer.from('ple.com\n'));
    c.m.flush();
    assert.doesNotMatch(c.text(), /alice|example/);
  });

  test('output ending in a prompt or a line break is not held; a held tail goes out when no more comes', async () => {
    assert.equal(holdFrom(Buffer.from('line\n')), 5);
    assert.equal(holdFrom(Buffer.from('user@host:~$ ')), 13);
    assert.equal(holdFrom(Buffer.from('...  ')), 5, 'no letter or digit: nothing to hold');
    assert.equal(holdFrom(Buffer.from('typed a')), 0);
    assert.equal(holdFrom(Buffer.alloc(HOLD_MAX + 10, 0x31)), 10, 'at most HOLD_MAX bytes are held');
    const c = collector(5);
    c.m.push(Buffer.from('$ '));
    assert.equal(c.text(), '$ ');
    c.m.push(Buffer.from('e'));
    assert.equal(c.text(), '$ ');
    await c.until((t) => t === '$ e');
  });

  test('a card number typed out in full in one chunk, and several in one chunk, are all masked', () => {
    const c = collector();
    c.m.push(Buffer.from(`a ${CARD} b 5500-0000-0000-0004 c bob@example.org\n`));
    assert.equal(c.text(), 'a **** b **** c ****\n');
  });
});

const { sshd } = await testEnv(['sshd']);

describe('ssh output masking with the real sshd', () => {
  let h: SshHarness;
  before(async () => {
    h = await startSshHarness(sshd, { maskOutput: true, config: { masking } });
  });
  after(() => h.close());

  test('exec stdout and stderr are masked for the agent and in the recording, split writes included', async () => {
    const marker = randomBytes(6).toString('hex');
    // Two writes by the shell, so the card can come in two packets.
    const r = await h.ssh([
      'agent@127.0.0.1',
      `echo m-${marker}; printf '4111 1111 '; printf '1111 1111\\n'; echo 'mail bob@example.org' >&2`,
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, `m-${marker}\n****\n`);
    assert.match(r.stderr, /mail \*\*\*\*/);
    const events = await h.waitForSession((evs) =>
      kinds(evs, 'terminal.open').some((e) => String(e.payload.command).includes(marker)),
    );
    assert.equal(streamText(events, 'terminal.output', 'stdout'), `m-${marker}\n****\n`);
    assert.match(streamText(events, 'terminal.output', 'stderr'), /mail \*\*\*\*/);
    assert.ok(kinds(events, 'terminal.output').some((e) => e.payload.masked === true));
    assert.ok(
      kinds(events, 'terminal.output').every((e) => e.payload.original === undefined),
      'no originals without masking.keepOriginals',
    );
    // The command line itself is the agent's input and recorded as typed; the output holds no value.
    assert.doesNotMatch(
      kinds(events, 'terminal.output')
        .map((e) => Buffer.from(String(e.payload.data), 'base64').toString())
        .join(''),
      /bob@example|4111|1111 1111/,
    );
  });

  test('ssh -tt: what a PTY shell prints is masked', async () => {
    const r = await h.ssh(['-tt', 'agent@127.0.0.1'], {
      stdin: `echo "card $((4111)) 1111 1111 1111 done"\nexit\n`,
    });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /card \*\*\*\* done/);
    assert.doesNotMatch(r.stdout, /4111 1111 1111 1111/);
  });

  test('scp (sftp) and scp -O (exec) move a file holding card numbers byte for byte', async () => {
    const name = `cards-${randomBytes(4).toString('hex')}.txt`;
    const content = Buffer.concat([Buffer.from(`${CARD}\nbob@example.org\n`), randomBytes(4096)]);
    const remote = join(sshd.homeDir, name);
    await writeFile(remote, content);
    try {
      for (const legacy of [false, true]) {
        const local = join(h.dir, `${legacy ? 'legacy' : 'sftp'}-${name}`);
        const r = await h.run('scp', [
          ...(legacy ? ['-O'] : []),
          '-P',
          String(h.port),
          `agent@127.0.0.1:${name}`,
          local,
        ]);
        assert.equal(r.code, 0, r.stderr);
        const got = await readFile(local);
        assert.equal(
          createHash('sha256').update(got).digest('hex'),
          createHash('sha256').update(content).digest('hex'),
          legacy ? 'scp -O' : 'scp',
        );
      }
    } finally {
      await rm(remote, { force: true });
    }
  });
});
