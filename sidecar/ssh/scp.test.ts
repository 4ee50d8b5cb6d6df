// Legacy scp (scp -O) decoded while relayed: the decoder on synthetic streams cut at every byte,
// then OpenSSH's scp -O through the sidecar against the real sshd: uploads and downloads recorded
// with path, size and SHA-256, and pathPattern applied to each file of a recursive copy.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { access, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { testEnv } from '../../test/env/index.ts';
import { ScpDecoder, type ScpOptions, type ScpSegment } from './scp.ts';
import type { FileOp } from './sftp.ts';
import { kinds, type SshHarness, startSshHarness } from './testing/harness.ts';

const sha = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');

/** Feeds `stream` in pieces of `step` bytes; returns the relayed bytes, the records and the events. */
function decode(o: ScpOptions, stream: Buffer, step: number) {
  const d = new ScpDecoder(o);
  const segs: ScpSegment[] = [];
  for (let i = 0; i < stream.length; i += step) segs.push(...d.feed(stream.subarray(i, i + step)));
  const ops: FileOp[] = [...d.drain(), ...d.end()];
  const relayed = Buffer.concat(segs.map((s) => (s.kind === 'bytes' ? s.data : s.line)));
  return { segs, ops, relayed, error: d.error };
}

describe('ScpDecoder', () => {
  const a = Buffer.from('alpha\n');
  const b = randomBytes(70_000);
  const stream = Buffer.concat([
    Buffer.from('D0755 0 dir\n'),
    Buffer.from('T1700000000 0 1700000000 0\n'),
    Buffer.from(`C0644 ${a.length} a.txt\n`),
    a,
    Buffer.from([0]),
    Buffer.from('D0700 0 sub\n'),
    Buffer.from(`C0600 ${b.length} b.bin\n`),
    b,
    Buffer.from([0]),
    Buffer.from('E\nE\n'),
    Buffer.from('C0644 0 empty\n'),
    Buffer.from([0]),
  ]);

  test('a recursive upload, cut anywhere, relays every byte and yields each file with its hash', () => {
    for (const step of [1, 7, 1000, stream.length]) {
      const r = decode({ direction: 'upload', roots: ['/srv'], targetIsDir: true }, stream, step);
      assert.equal(r.error, undefined);
      assert.ok(r.relayed.equals(stream), `step ${step}`);
      assert.deepEqual(
        r.segs.filter((s) => s.kind === 'file').map((s) => (s.kind === 'file' ? [s.path, s.size] : [])),
        [
          ['/srv/dir/a.txt', 6],
          ['/srv/dir/sub/b.bin', 70_000],
          ['/srv/empty', 0],
        ],
      );
      assert.deepEqual(r.ops, [
        { op: 'upload', path: '/srv/dir/a.txt', bytes: 6, sha256: sha(a), status: 'ok' },
        { op: 'upload', path: '/srv/dir/sub/b.bin', bytes: 70_000, sha256: sha(b), status: 'ok' },
        { op: 'upload', path: '/srv/empty', bytes: 0, sha256: sha(''), status: 'ok' },
      ]);
    }
  });

  test('a file record is one segment even when split, so nothing of it passes before the decision', () => {
    const r = decode({ direction: 'upload', roots: ['/srv'], targetIsDir: true }, stream, 3);
    const files = r.segs.filter((s) => s.kind === 'file');
    assert.equal(files.length, 3);
    assert.equal(String(files[0]!.kind === 'file' && files[0]!.line), 'C0644 6 a.txt\n');
  });

  test('target not a directory: the top record becomes the target; downloads map to the sources', () => {
    const one = Buffer.concat([Buffer.from('C0644 6 local-name\n'), a, Buffer.from([0])]);
    assert.equal(
      decode({ direction: 'upload', roots: ['/srv/x.txt'], targetIsDir: false }, one, 5).ops[0]!.path,
      '/srv/x.txt',
    );
    const two = Buffer.concat([
      Buffer.from('\x01scp: /nope: No such file or directory\n'),
      one,
      Buffer.from('D0755 0 logs\nC0644 6 today\n'),
      a,
      Buffer.from([0]),
      Buffer.from('E\n'),
    ]);
    const r = decode(
      { direction: 'download', roots: ['/nope', '/etc/motd', '/var/log'], targetIsDir: false },
      two,
      4,
    );
    assert.deepEqual(
      r.ops.map((o) => [o.op, o.path, o.sha256 === sha(a)]),
      [
        ['download', '/etc/motd', true],
        ['download', '/var/log/today', true],
      ],
    );
  });

  test('target kind unknown (the host has no sftp to ask): a file is checked at both places it may land', () => {
    const one = Buffer.concat([Buffer.from('C0644 6 secret.key\n'), a, Buffer.from([0])]);
    const r = decode({ direction: 'upload', roots: ['/tmp'], targetIsDir: undefined }, one, 4);
    const file = r.segs.find((x) => x.kind === 'file');
    assert.deepEqual(file?.kind === 'file' ? file.paths : [], ['/tmp/secret.key', '/tmp']);
    assert.equal(r.ops[0]!.path, '/tmp/secret.key');
  });

  test('a failed or cut-off transfer has no hash; names with slashes and garbage are errors', () => {
    const failed = Buffer.concat([Buffer.from('C0644 6 a\n'), a, Buffer.from('\x01read error\n')]);
    assert.deepEqual(decode({ direction: 'download', roots: ['/a'], targetIsDir: false }, failed, 2).ops, [
      { op: 'download', path: '/a', bytes: 6, status: 'read error' },
    ]);
    const cut = Buffer.concat([Buffer.from('C0644 100 a\n'), a]);
    assert.deepEqual(decode({ direction: 'download', roots: ['/a'], targetIsDir: false }, cut, 100).ops, [
      { op: 'download', path: '/a', bytes: 6, status: 'channel closed' },
    ]);
    assert.match(
      String(
        decode({ direction: 'upload', roots: ['/t'], targetIsDir: true }, Buffer.from('C0644 1 ../x\n'), 9)
          .error,
      ),
      /unexpected scp record/,
    );
    assert.match(
      String(
        decode({ direction: 'upload', roots: ['/t'], targetIsDir: true }, Buffer.alloc(9000, 0x43), 9000)
          .error,
      ),
      /too long/,
    );
  });
});

const { sshd } = await testEnv(['sshd']);

const exists = (path: string) =>
  access(path).then(
    () => true,
    () => false,
  );

describe('scp -O through the sidecar', () => {
  let h: SshHarness;
  before(async () => {
    h = await startSshHarness(sshd, {
      config: {
        guardrails: [{ name: 'no-secrets', match: { pathPattern: '/secret[^/]*$' }, action: 'block' }],
      },
    });
  });
  after(() => h.close());

  test('upload and download are recorded as file operations with size and SHA-256', async () => {
    const name = `legacy-${randomBytes(4).toString('hex')}.bin`;
    const content = randomBytes(300_000);
    const local = join(h.dir, name);
    await writeFile(local, content);
    // -p: times (T records) travel with the file.
    const up = await h.run('scp', ['-O', '-p', '-P', String(h.port), local, `agent@127.0.0.1:${name}`]);
    assert.equal(up.code, 0, up.stderr);
    assert.equal(sha(await readFile(join(sshd.homeDir, name))), sha(content));
    const back = join(h.dir, `back-${name}`);
    const down = await h.run('scp', ['-O', '-P', String(h.port), `agent@127.0.0.1:${name}`, back]);
    assert.equal(down.code, 0, down.stderr);
    assert.equal(sha(await readFile(back)), sha(content));
    const files = async (op: string) => {
      const events = await h.waitForSession((evs) =>
        kinds(evs, 'terminal.file').some((e) => e.payload.op === op && String(e.payload.path).endsWith(name)),
      );
      return kinds(events, 'terminal.file').map((e) => e.payload);
    };
    const target = join(sshd.homeDir, name);
    assert.deepEqual(
      (await files('upload')).map((p) => [p.op, p.path, p.bytes, p.sha256, p.status]),
      [['upload', target, content.length, sha(content), 'ok']],
    );
    assert.deepEqual(
      (await files('download')).map((p) => [p.op, p.path, p.bytes, p.sha256, p.status]),
      [['download', target, content.length, sha(content), 'ok']],
    );
    await rm(target, { force: true });
  });

  test('scp -O -r: a file the rules refuse inside the tree never reaches the host; the rest does', async () => {
    const dirName = `tree-${randomBytes(4).toString('hex')}`;
    const tree = join(h.dir, dirName);
    await mkdir(join(tree, 'inner'), { recursive: true });
    await writeFile(join(tree, 'ok.txt'), 'fine\n');
    await writeFile(join(tree, 'inner', 'secret.key'), 'do not copy\n');
    const r = await h.run('scp', ['-O', '-r', '-P', String(h.port), tree, 'agent@127.0.0.1:']);
    assert.notEqual(r.code, 0, 'scp reports the refused file');
    assert.match(r.stderr, /no-secrets/);
    const remote = join(sshd.homeDir, dirName);
    assert.equal(await readFile(join(remote, 'ok.txt'), 'utf8'), 'fine\n');
    assert.equal(await exists(join(remote, 'inner', 'secret.key')), false);
    const events = await h.waitForSession((evs) =>
      kinds(evs, 'terminal.file').some((e) => e.payload.status === 'blocked'),
    );
    const ops = kinds(events, 'terminal.file').map((e) => [e.payload.path, e.payload.status]);
    assert.deepEqual(
      ops.sort(),
      [
        [join(remote, 'inner', 'secret.key'), 'blocked'],
        [join(remote, 'ok.txt'), 'ok'],
      ].sort(),
    );
    assert.ok(kinds(events, 'policy.blocked').some((e) => String(e.payload.rule) === 'no-secrets'));
    await rm(remote, { recursive: true, force: true });
  });

  test('scp -O download of a refused file inside a tree: the agent never gets it and reads why', async () => {
    const dirName = `down-${randomBytes(4).toString('hex')}`;
    const remote = join(sshd.homeDir, dirName);
    await mkdir(remote, { recursive: true });
    await writeFile(join(remote, 'a.txt'), 'public\n');
    await writeFile(join(remote, 'secret.txt'), 'private\n');
    const local = join(h.dir, `got-${dirName}`);
    const r = await h.run('scp', ['-O', '-r', '-P', String(h.port), `agent@127.0.0.1:${dirName}`, local]);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /no-secrets/);
    assert.equal(await readFile(join(local, 'a.txt'), 'utf8'), 'public\n');
    assert.equal(await exists(join(local, 'secret.txt')), false);
    await rm(remote, { recursive: true, force: true });
  });
});
