import assert from 'node:assert/strict';
import { test } from 'node:test';
import { LineTracker } from './line.ts';

function lines(input: string, max = 1024) {
  const t = new LineTracker(max);
  const buf = Buffer.from(input, 'latin1');
  const out: ReturnType<LineTracker['take']>[] = [];
  let from = 0;
  for (;;) {
    const enter = t.feed(buf, from);
    if (enter < 0) break;
    out.push(t.take());
    from = enter + 1;
  }
  return out;
}

test('printable text, backspace, ^U, ^W and ^C edit the line as a line editor does', () => {
  assert.deepEqual(
    lines('ls -l\rrmx\x7f -rf /\x15echo ok\recho one two\x17three\r\x03\r').map((l) => l.text),
    ['ls -l', 'echo ok', 'echo one three', ''],
  );
});

test('multibyte characters are erased whole by one backspace', () => {
  assert.equal(lines(Buffer.from('echo héé\x7f\r').toString('latin1'))[0]!.text, 'echo hé');
});

test('cursor keys, history, tab and Alt-keys make a line uncertain; bracketed paste does not', () => {
  const got = lines('\x1b[A\recho a\x1b[Db\rls\t\r\x1bb\r\x1b[200~pasted\x1b[201~\rok\r');
  assert.deepEqual(
    got.map((l) => [l.text, l.uncertain]),
    [
      ['', true],
      ['echo ab', true],
      ['ls', true],
      ['', true],
      ['pasted', false],
      ['ok', false],
    ],
  );
});

test('a line over the limit keeps its end and says it was truncated', () => {
  const [l] = lines(`${'a'.repeat(20)}rm -rf /\r`, 10);
  assert.equal(l!.text, `${'a'.repeat(20)}rm -rf /`.slice(-10));
  assert.equal(l!.truncated, true);
});
