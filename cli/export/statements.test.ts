import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { sampleHeader } from '../../recording/testing/fixtures.ts';
import { fileTestStore, type TestStore } from '../../recording/testing/test-store.ts';
import { run } from '../program.ts';
import { csvCell } from './csv.ts';
import { STATEMENT_FIELDS } from './statements.ts';

/** A PostgreSQL session as the gateway records it: answered, blocked, approved, failed, unanswered. */
async function recordSqlSession(fixture: TestStore): Promise<{ store: string; id: string }> {
  const store = fixture.url;
  const rec = await fixture.recorder();
  const s = await rec.startSession(sampleHeader());
  const add = (kind: string, direction: 'client' | 'server' | 'internal', payload: Record<string, unknown>) =>
    s.append({ kind, direction, payload });
  await add('pg.query', 'client', {
    sql: 'SELECT id, email FROM users WHERE id = $1',
    params: ['7'],
    protocol: 'extended',
  });
  await add('pg.result', 'server', {
    commandTag: 'SELECT 1',
    rows: 1,
    durationMs: 1.5,
    maskedCells: 1,
    columns: ['id', 'email'],
    rowsSample: [['7', '***']],
  });
  await add('policy.blocked', 'internal', {
    rule: 'no-drop',
    reason: 'chaperone: statement blocked by rule no-drop',
    command: 'DROP TABLE users',
    protocol: 'simple',
  });
  await add('pg.error', 'server', {
    sqlstate: '42501',
    message: 'blocked',
    severity: 'ERROR',
    blocked: true,
  });
  await add('approval.granted', 'internal', { approval: 'appr-1', approver: 'carol@example.com' });
  await add('pg.query', 'client', { sql: 'DELETE FROM carts WHERE stale', protocol: 'simple' });
  await add('pg.result', 'server', { commandTag: 'DELETE 3', rows: 3, durationMs: 2, maskedCells: 0 });
  await add('pg.query', 'client', { sql: 'SELECT "a,b", 1/0', protocol: 'simple' });
  await add('pg.error', 'server', {
    sqlstate: '22012',
    message: 'division by zero',
    severity: 'ERROR',
    durationMs: 0.4,
  });
  await add('pg.query', 'client', { sql: '=HYPERLINK("x")', protocol: 'simple' });
  await s.end({ reason: 'client closed' });
  await rec.close();
  return { store, id: s.sessionId };
}

test('jsonl and csv exports: each statement with its result, blocked and approved ones marked', async () => {
  const fixture = await fileTestStore('export-sql');
  const { dir } = fixture;
  const { store, id } = await recordSqlSession(fixture);
  const io = { out: () => {}, err: (t: string) => assert.fail(t) };
  const jsonlFile = join(dir, 's.jsonl');
  assert.equal(
    await run(['--store', store, 'sessions', 'export', id, '--format', 'jsonl', '-o', jsonlFile], io),
    0,
  );
  const rows = (await readFile(jsonlFile, 'utf8'))
    .trimEnd()
    .split('\n')
    .map((l) => JSON.parse(l));
  assert.deepEqual(Object.keys(rows[0]), [...STATEMENT_FIELDS]);
  assert.deepEqual(
    rows.map((r) => [r.sql, r.outcome, r.command_tag, r.rows, r.approved_by, r.rule, r.sqlstate]),
    [
      ['SELECT id, email FROM users WHERE id = $1', 'ok', 'SELECT 1', 1, null, null, null],
      ['DROP TABLE users', 'blocked', null, null, null, 'no-drop', null],
      ['DELETE FROM carts WHERE stale', 'ok', 'DELETE 3', 3, 'carol@example.com', null, null],
      ['SELECT "a,b", 1/0', 'error', null, null, null, null, '22012'],
      ['=HYPERLINK("x")', 'unanswered', null, null, null, null, null],
    ],
  );
  assert.deepEqual(rows[0].params, ['7']);
  assert.deepEqual(rows[0].rows_sample, [['7', '***']]);
  assert.equal(rows[0].masked_cells, 1);
  assert.ok(rows[1].seq > rows[0].seq && rows[2].seq > rows[1].seq);

  let csvText = '';
  assert.equal(
    await run(['--store', store, 'sessions', 'export', id, '--format', 'csv'], {
      out: (t) => {
        csvText += t;
      },
      err: (t) => assert.fail(t),
    }),
    0,
  );
  const lines = csvText.split('\r\n');
  assert.equal(lines[0], STATEMENT_FIELDS.join(','));
  assert.equal(lines.length, 7); // header, 5 statements, final empty
  assert.match(lines[4]!, /"SELECT ""a,b"", 1\/0",,error,/);
  assert.match(lines[5]!, /,"'=HYPERLINK\(""x""\)",,unanswered,/);
  assert.match(lines[1]!, /,"\[""7""\]",ok,SELECT 1,1,1.5,"\[""id"",""email""\]"/);
});

test('csv cells: quoting and formula guard', () => {
  assert.equal(csvCell(null), '');
  assert.equal(csvCell('plain'), 'plain');
  assert.equal(csvCell('a"b'), '"a""b"');
  assert.equal(csvCell('line\nbreak'), '"line\nbreak"');
  assert.equal(csvCell('-- comment'), "'-- comment");
  assert.equal(csvCell(-1), '-1');
  assert.equal(csvCell(['x', 1]), '"[""x"",1]"');
});
