// The templates of pg.query / pg.result write the same bytes as JSON.stringify of the generic payload
// objects they replace (the recording format is JSON lines; the auditor and verify read them back).
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { encodeResultPayload } from '../session/index.ts';
import { resultFieldsJson, simpleQueryJson } from './event-json.ts';

const STRINGS = [
  '',
  'SELECT 1',
  'SELECT abalance FROM pgbench_accounts WHERE aid = 48213;',
  "SELECT 'it''s', \"quoted\" FROM t -- comment\n\tWHERE x = '\\n'",
  'SELECT \u0000\u0001\u001f\u007f\u2028\u2029 AS ctl',
  "SELECT 'ünïcødé ✓ 日本 😀'",
  'lone surrogates \ud800 and \udfff',
  'x'.repeat(70_000),
];

// What the generic path builds (sidecar/session/capture.ts recordResult, before the template).
function genericResult(
  commandTag: string,
  rows: number,
  durationMs: number,
  maskedCells: number,
  columns: string[] | undefined,
  sample: unknown[][],
  originals: { row: number; values: unknown[] }[] | undefined,
): string {
  const payload: Record<string, unknown> = { commandTag, rows };
  payload.durationMs = durationMs;
  payload.maskedCells = maskedCells;
  if (columns) payload.columns = columns;
  if (sample.length > 0) payload.rowsSample = sample;
  if (originals) payload.unmaskedRowsSample = originals;
  return JSON.stringify(payload);
}

describe('pg event templates', () => {
  test('pg.query (simple) is JSON.stringify({ sql, protocol })', () => {
    for (const sql of STRINGS) {
      const json = simpleQueryJson(sql);
      assert.equal(json, JSON.stringify({ sql, protocol: 'simple' }));
      assert.deepEqual(JSON.parse(json), { sql, protocol: 'simple' });
    }
  });

  test('pg.result is JSON.stringify of the generic payload, whatever the fields', () => {
    const tags = ['SELECT 1', 'INSERT 0 5', 'UPDATE 1000000', '', 'SUSPENDED', 'BEGIN', 'tag "q" \\ ✓'];
    const numbers = [0, -0, 1, 12, 2 ** 53 + 2, 0.000123, 1e-7, 1e21, 0.1 + 0.2, Number.NaN, Infinity];
    const columnSets = [undefined, [], ['abalance'], ['a', 'b "c"', '日本', '\u0000'], ['x'.repeat(300)]];
    const samples: unknown[][][] = [
      [],
      [['48213']],
      [
        ['1', null, 'two'],
        [null, { base64: 'AAEC' }, '\u2028'],
      ],
    ];
    const originalsSets = [undefined, [{ row: 0, values: ['secret@example.com', null] }]];
    let cases = 0;
    for (const tag of tags)
      for (const n of numbers)
        for (const columns of columnSets)
          for (const sample of samples)
            for (const originals of originalsSets) {
              const rows = Number.isFinite(n) ? Math.abs(Math.trunc(n)) : 7;
              const maskedCells = originals ? 2 : 0;
              const want = genericResult(tag, rows, n, maskedCells, columns, sample, originals);
              const got = encodeResultPayload(
                resultFieldsJson(tag, rows),
                n,
                { maskedCells, sample, originals },
                columns,
              );
              assert.equal(got, want);
              cases++;
            }
    assert.ok(cases > 1000, `${cases} cases`);
    // The column list's JSON is cached per list: a second use of the same list gives the same bytes.
    const cols = ['a', 'b'];
    const c = { maskedCells: 0, sample: [], originals: undefined };
    assert.equal(encodeResultPayload('', 1, c, cols), encodeResultPayload('', 1, c, cols));
    assert.equal(
      encodeResultPayload('', 1, c, cols),
      JSON.stringify({ durationMs: 1, maskedCells: 0, columns: cols }),
    );
  });
});
