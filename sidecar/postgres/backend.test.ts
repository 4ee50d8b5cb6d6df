// The upstream framer and the in-place readers the relay uses on every statement.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { BackendFramer } from './backend.ts';
import { B, commandTag, commandTagAt, dataRow, dataRowText, readyForQuery } from './protocol.ts';

function commandComplete(tag: string): Buffer {
  const body = Buffer.from(`${tag}\0`, 'utf8');
  const out = Buffer.alloc(5 + body.length);
  out[0] = B.commandComplete;
  out.writeInt32BE(4 + body.length, 1);
  body.copy(out, 5);
  return out;
}

describe('BackendFramer', () => {
  const stream = Buffer.concat([
    dataRow([Buffer.from('42'), null, Buffer.from('é')]),
    commandComplete('SELECT 1'),
    readyForQuery('T'),
  ]);

  test('finds the same messages whatever the chunking, in place or as views', () => {
    for (let cut = 1; cut < stream.length; cut++) {
      const framer = new BackendFramer();
      const seen: { type: number; bytes: string }[] = [];
      for (const chunk of [stream.subarray(0, cut), stream.subarray(cut)]) {
        framer.push(chunk);
        for (let t = framer.nextType(); t >= 0; t = framer.nextType())
          seen.push({ type: t, bytes: framer.frameBuf.toString('hex', framer.frameStart, framer.frameEnd) });
      }
      assert.deepEqual(
        seen.map((s) => s.type),
        [B.dataRow, B.commandComplete, B.readyForQuery],
        `cut at ${cut}`,
      );
      assert.equal(seen.map((s) => s.bytes).join(''), stream.toString('hex'), `cut at ${cut}`);
    }
  });

  test('retain() keeps a partial message when its chunk is reused', () => {
    const framer = new BackendFramer();
    const reused = Buffer.from(stream.subarray(0, 10));
    framer.push(reused);
    assert.equal(framer.nextType(), -1);
    framer.retain();
    reused.fill(0xff); // the read buffer is overwritten by the next read
    framer.push(stream.subarray(10));
    const f = framer.next();
    assert.equal(f?.type, B.dataRow);
    assert.deepEqual(f?.raw, stream.subarray(0, f?.raw.length));
  });

  test('a bad length breaks the stream with a reason', () => {
    const framer = new BackendFramer();
    framer.push(Buffer.from([B.dataRow, 0, 0, 0, 2]));
    assert.equal(framer.nextType(), -1);
    assert.match(framer.error ?? '', /invalid backend message length 2/);
  });
});

describe('in-place readers', () => {
  test('dataRowText: text, NULL, binary as \\x hex, at an offset inside a larger buffer', () => {
    const row = dataRow([Buffer.from('4111 1111'), null, Buffer.from([0, 255])]);
    const buf = Buffer.concat([Buffer.from('junk'), row, Buffer.from('more')]);
    const cells = dataRowText(buf, 4, 4 + row.length, [
      { format: 'text' },
      { format: 'text' },
      { format: 'binary' },
    ]);
    assert.deepEqual(cells, ['4111 1111', null, '\\x00ff']);
  });

  test('dataRowText: a cell longer than the message is malformed', () => {
    const row = dataRow([Buffer.from('abc')]);
    row.writeInt32BE(99, 7);
    assert.equal(dataRowText(row, 0, row.length, undefined), undefined);
  });

  test('commandTagAt reads the tag of a message inside a larger buffer', () => {
    const msg = commandComplete('INSERT 0 3');
    const buf = Buffer.concat([readyForQuery('I'), msg, readyForQuery('I')]);
    assert.equal(commandTagAt(buf, 6, 6 + msg.length), 'INSERT 0 3');
    assert.equal(commandTag(msg), 'INSERT 0 3');
  });
});
