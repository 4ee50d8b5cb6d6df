// The sftp decoder with synthetic packets: path checks, refusals, and the file records it builds
// from requests and replies.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { test } from 'node:test';
import { FXP, PacketFramer, SftpObserver, statusPacket } from './sftp.ts';

function str(s: string | Buffer): Buffer {
  const b = typeof s === 'string' ? Buffer.from(s) : s;
  const len = Buffer.alloc(4);
  len.writeUInt32BE(b.length);
  return Buffer.concat([len, b]);
}
function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n);
  return b;
}
function u64(n: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64BE(BigInt(n));
  return b;
}
function packet(type: number, ...parts: Buffer[]): Buffer {
  const body = Buffer.concat([Buffer.from([type]), ...parts]);
  return Buffer.concat([u32(body.length), body]);
}

test('paths are made absolute and normalised before the guard sees them', () => {
  const o = new SftpObserver();
  o.home = '/home/agent';
  const v = o.request(packet(FXP.OPEN, u32(1), str('../../etc//./shadow'), u32(1), u32(0)));
  assert.deepEqual(v, { forward: 'check', paths: ['/etc/shadow'] });
  const r = o.request(packet(FXP.RENAME, u32(2), str('a'), str('/tmp/../b')));
  assert.deepEqual(r, { forward: 'check', paths: ['/home/agent/a', '/b'] });
});

test('links, unknown extensions, NUL bytes and long paths are refused with a status reply', () => {
  const o = new SftpObserver();
  const link = o.request(packet(FXP.SYMLINK, u32(7), str('/etc/shadow'), str('x')));
  assert.equal(link.forward, false);
  if (link.forward === false) {
    assert.equal(link.rule, 'sftp-links');
    assert.equal(link.reply.readUInt32BE(5), 7, 'the reply answers the request id');
  }
  const ext = o.request(packet(FXP.EXTENDED, u32(8), str('copy-data'), str('h')));
  assert.equal(ext.forward === false && ext.rule, 'sftp-extension');
  const nul = o.request(packet(FXP.STAT, u32(9), str('/etc/pass\0wd')));
  assert.equal(nul.forward === false && nul.rule, 'sftp-protocol');
  const long = o.request(packet(FXP.STAT, u32(10), str('a'.repeat(5000))));
  assert.equal(long.forward === false && long.rule, 'sftp-protocol');
  const short = o.request(packet(FXP.STAT, u32(11), Buffer.from([0, 0, 0, 50, 0x61])));
  assert.equal(short.forward === false && short.rule, 'sftp-protocol');
});

test('an upload through one handle is recorded with its size and SHA-256; a gap drops the hash', () => {
  const o = new SftpObserver();
  o.home = '/h';
  const data = [Buffer.from('hello '), Buffer.from('world')];
  o.request(packet(FXP.OPEN, u32(1), str('f.txt'), u32(0x1a), u32(0)));
  assert.deepEqual(o.reply(packet(FXP.HANDLE, u32(1), str('H1'))), []);
  o.request(packet(FXP.WRITE, u32(2), str('H1'), u64(0), str(data[0]!)));
  o.request(packet(FXP.WRITE, u32(3), str('H1'), u64(6), str(data[1]!)));
  o.request(packet(FXP.CLOSE, u32(4), str('H1')));
  const ops = o.reply(statusPacket(4, 0, ''));
  assert.deepEqual(ops, [
    {
      op: 'upload',
      path: '/h/f.txt',
      bytes: 11,
      sha256: createHash('sha256').update('hello world').digest('hex'),
      status: 'ok',
    },
  ]);
  o.request(packet(FXP.OPEN, u32(5), str('g'), u32(1), u32(0)));
  o.reply(packet(FXP.HANDLE, u32(5), str('H2')));
  o.request(packet(FXP.READ, u32(6), str('H2'), u64(100), u32(10)));
  o.reply(packet(FXP.DATA, u32(6), str('0123456789')));
  o.request(packet(FXP.CLOSE, u32(7), str('H2')));
  assert.deepEqual(o.reply(statusPacket(7, 0, '')), [{ op: 'read', path: '/h/g', bytes: 10, status: 'ok' }]);
});

test('the framer splits and joins packets across chunks and refuses absurd lengths', () => {
  const f = new PacketFramer();
  const a = packet(FXP.STAT, u32(1), str('/a'));
  const b = packet(FXP.STAT, u32(2), str('/b'));
  const both = Buffer.concat([a, b]);
  assert.deepEqual(f.push(both.subarray(0, 5)), []);
  const got = f.push(both.subarray(5));
  assert.deepEqual(got, [a, b]);
  const bad = new PacketFramer();
  bad.push(u32(10 * 1024 * 1024));
  assert.match(String(bad.error), /sftp packet/);
});

test('the framer returns the same packets whatever the cuts, large writes included', () => {
  const packets = [
    packet(FXP.STAT, u32(1), str('/a')),
    packet(FXP.WRITE, u32(2), str('h'), Buffer.alloc(8), str('x'.repeat(32 * 1024))),
    packet(FXP.WRITE, u32(3), str('h'), Buffer.alloc(8), str('y'.repeat(70_000))),
    packet(FXP.CLOSE, u32(4), str('h')),
  ];
  const stream = Buffer.concat(packets);
  for (const step of [1, 2, 3, 5, 4096, 32 * 1024, 32 * 1024 + 7, stream.length]) {
    const f = new PacketFramer();
    const got: Buffer[] = [];
    for (let i = 0; i < stream.length; i += step) got.push(...f.push(stream.subarray(i, i + step)));
    assert.equal(f.error, undefined);
    assert.deepEqual(got, packets, `step ${step}`);
  }
});
