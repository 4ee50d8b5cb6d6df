import assert from 'node:assert/strict';
import { appendFile, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { Journal, journalFileName, listJournalFiles, readJournalFile, sessionTag } from './journal.ts';
import { SegmentBuffer } from './segment-buffer.ts';
import { tempDir } from './testing/fixtures.ts';

const line = (seq: number, extra = '') =>
  [`{"seq":${seq},"kind":"k","payload":`, `{"x":"${extra}"}`] as const;

describe('journal', () => {
  test('appends made in one turn share one fdatasync; concurrent writers share groups', async () => {
    const dir = await tempDir('journal-group');
    const j = await Journal.open(dir, 64 * 1024 * 1024);
    const sink = new SegmentBuffer();
    const tag = sessionTag('s1');
    const first = [];
    for (let i = 0; i < 1000; i++) {
      j.append(tag, ...line(i), sink);
      first.push(j.commit());
    }
    await Promise.all(first);
    assert.equal(j.commits, 1, 'one group commit for 1000 appends');
    // 50 writers, each waiting for its own append before the next: groups form while fsyncs run.
    let seq = 1000;
    await Promise.all(
      Array.from({ length: 50 }, async () => {
        for (let i = 0; i < 20; i++) {
          j.append(tag, ...line(seq++), sink);
          await j.commit();
        }
      }),
    );
    assert.ok(j.commits <= 1 + 40, `1000 waited-for appends took ${j.commits - 1} commits`);
    await j.close();
    const seqs = [...readJournalFile(join(dir, journalFileName(j.fileNo)))].map((e) =>
      e.type === 'record' ? e.seq : -1,
    );
    assert.equal(seqs.length, 2000);
    assert.deepEqual(
      [...seqs].sort((a, b) => a - b),
      Array.from({ length: 2000 }, (_, i) => i),
    );
    // The sink (open segment) got every line followed by a newline.
    const text = Buffer.concat(sink.take()).toString('utf8');
    assert.equal(text.split('\n').length, 2001);
    assert.equal(text.split('\n')[0], '{"seq":0,"kind":"k","payload":{"x":""}}');
  });

  test('an urgent commit closes an open commit window: the records before it ride along in one write', async () => {
    const dir = await tempDir('journal-urgent');
    // A window far longer than the test may take: only an urgent commit can end it in time.
    const j = await Journal.open(dir, 64 * 1024 * 1024, 600_000);
    const sink = new SegmentBuffer();
    const tag = sessionTag('s1');
    j.append(tag, ...line(0), sink);
    const lazy = j.commit();
    let lazyDone = false;
    void lazy.then(() => {
      lazyDone = true;
    });
    await new Promise((r) => setImmediate(r));
    assert.equal(lazyDone, false, 'a plain commit waits for its window');
    j.append(tag, ...line(1), sink);
    const bounded = <T>(p: Promise<T>) =>
      Promise.race([
        p,
        new Promise<never>((_, reject) =>
          setTimeout(() => reject(new Error('still waiting')), 30_000).unref(),
        ),
      ]);
    await bounded(j.commit(true));
    assert.equal(lazyDone, true, 'the earlier record was written with the urgent one');
    assert.equal(j.commits, 1, 'one write for both');
    // A write in flight: an urgent record that arrives meanwhile is written right after it.
    j.append(tag, ...line(2), sink);
    const inFlight = j.commit(true);
    await new Promise((r) => setImmediate(r));
    j.append(tag, ...line(3), sink);
    const next = j.commit(true);
    await bounded(Promise.all([inFlight, next]));
    assert.ok(j.commits >= 2 && j.commits <= 3);
    await j.close();
    const seqs = [...readJournalFile(join(dir, journalFileName(j.fileNo)))].map((e) =>
      e.type === 'record' ? e.seq : -1,
    );
    assert.deepEqual(seqs, [0, 1, 2, 3]);
  });

  test('records read back with their session; a torn tail and a bad CRC are reported, not returned', async () => {
    const dir = await tempDir('journal-torn');
    const j = await Journal.open(dir, 64 * 1024 * 1024);
    const sink = new SegmentBuffer();
    j.append(sessionTag('alpha'), ...line(0, 'ünï'), sink);
    j.append(sessionTag('beta'), ...line(0, 'x'.repeat(3000)), sink);
    j.append(sessionTag('alpha'), ...line(1), sink);
    await j.commit();
    await j.close();
    const path = join(dir, journalFileName(j.fileNo));
    const whole = await readFile(path);
    const entries = [...readJournalFile(path, 512)];
    assert.deepEqual(
      entries.map((e) => (e.type === 'record' ? `${e.sessionId}:${e.seq}` : 'torn')),
      ['alpha:0', 'beta:0', 'alpha:1'],
    );
    const first = entries[0]!;
    assert.equal(
      first.type === 'record' && first.line.toString('utf8'),
      '{"seq":0,"kind":"k","payload":{"x":"ünï"}}',
    );

    // Cut the last record in the middle: the first two survive, the cut is reported for 'alpha'.
    await writeFile(path, whole.subarray(0, whole.length - 10));
    const cut = [...readJournalFile(path)];
    assert.equal(cut.length, 3);
    const torn = cut[2]!;
    assert.equal(torn.type, 'torn');
    assert.equal(torn.type === 'torn' && torn.sessionId, 'alpha');
    assert.match(torn.type === 'torn' ? torn.why : '', /cut short/);

    // Flip a byte inside the second record: only that record is lost; reading resumes after it.
    const recordSize = (id: string, l: readonly [string, string]) =>
      8 + 1 + id.length + Buffer.byteLength(l.join('')) + 1;
    const secondStart = 8 + recordSize('alpha', line(0, 'ünï'));
    const flipped = Buffer.from(whole);
    flipped[secondStart + 20]! ^= 0x20;
    await writeFile(path, flipped);
    const bad = [...readJournalFile(path)];
    assert.deepEqual(
      bad.map((e) => (e.type === 'record' ? `${e.sessionId}:${e.seq}` : 'torn')),
      ['alpha:0', 'torn', 'alpha:1'],
    );
    const skipped = bad[1]!;
    assert.equal(skipped.type, 'torn');
    if (skipped.type === 'torn') {
      assert.match(skipped.why, /^record checksum mismatch; resynchronised at offset \d+$/);
      assert.equal(skipped.offset, secondStart);
      assert.equal(skipped.bytes, recordSize('beta', line(0, 'x'.repeat(3000))));
      assert.equal(skipped.resumed, true);
      assert.equal(skipped.sessionId, 'beta', 'the readable tag names the damaged record');
      assert.equal(skipped.fromSeq, undefined, 'alpha 0 -> 1 has no hole: the neighbours name no range');
    }

    // A few stray bytes after the last record (header cut short).
    await writeFile(path, whole);
    await appendFile(path, Buffer.from([1, 2, 3]));
    const stray = [...readJournalFile(path)];
    assert.equal(stray.length, 4);
    assert.equal(stray[3]!.type === 'torn' && stray[3]!.bytes, 3);
  });

  test('rotates files at the size limit; old files can be deleted, the current one never', async () => {
    const dir = await tempDir('journal-rotate');
    const j = await Journal.open(dir, 4096);
    const sink = new SegmentBuffer();
    for (let i = 0; i < 50; i++) {
      j.append(sessionTag('s'), ...line(i, 'y'.repeat(500)), sink);
      await j.commit();
    }
    const files = await listJournalFiles(dir);
    assert.ok(files.length > 3, `rotated into ${files.length} files`);
    const seqs = files.flatMap((f) =>
      [...readJournalFile(join(dir, journalFileName(f)))].map((e) => (e.type === 'record' ? e.seq : -1)),
    );
    assert.deepEqual(
      seqs,
      Array.from({ length: 50 }, (_, i) => i),
    );
    await j.deleteBefore(Number.MAX_SAFE_INTEGER);
    assert.deepEqual(await listJournalFiles(dir), [j.fileNo]);
    await j.close();
    // A new journal never reuses an existing file.
    const j2 = await Journal.open(dir, 4096);
    assert.equal(j2.fileNo, j.fileNo + 1);
    await j2.close();
  });
  test('a commit window gathers records from several turns of the event loop into one write', async () => {
    const dir = await tempDir('journal-window');
    const windowed = await Journal.open(dir, 64 * 1024 * 1024, 50);
    const sink = new SegmentBuffer();
    const commits: Promise<void>[] = [];
    for (let i = 0; i < 5; i++) {
      windowed.append(sessionTag('w'), ...line(i, 'x'), sink);
      commits.push(windowed.commit());
      await new Promise((r) => setImmediate(r)); // the next record comes a turn later
    }
    await Promise.all(commits);
    assert.equal(windowed.commits, 1, 'one durable write for all five');
    await windowed.close();

    const immediate = await Journal.open(await tempDir('journal-nowindow'), 64 * 1024 * 1024);
    const done: Promise<void>[] = [];
    for (let i = 0; i < 5; i++) {
      immediate.append(sessionTag('w'), ...line(i, 'x'), sink);
      done.push(immediate.commit());
      await new Promise((r) => setImmediate(r));
      await new Promise((r) => setImmediate(r));
    }
    await Promise.all(done);
    assert.ok(immediate.commits > 1, `without a window each turn commits (${immediate.commits})`);
    await immediate.close();
  });
});
