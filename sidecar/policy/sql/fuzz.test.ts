// Garbage in must never throw, hang or crash the parser for later statements.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { before, describe, it } from 'node:test';
import { withSeed } from '../../../test/testing/random.ts';
import { classifySql, loadSqlParser } from './classify.ts';
import { createSqlGuard } from './guard.ts';

const corpus = (
  JSON.parse(readFileSync(new URL('./testdata/corpus.json', import.meta.url), 'utf8')) as { sql: string }[]
).map((e) => e.sql);

const TOKENS = [
  'SELECT',
  'DELETE',
  'FROM',
  'WHERE',
  'DROP',
  'TABLE',
  'DO',
  '$$',
  '$x$',
  "'",
  '"',
  '(',
  ')',
  ';',
  '--',
  '/*',
  '*/',
  'BEGIN',
  'END',
  'EXECUTE',
  'WITH',
  'AS',
  'RETURNING',
  '*',
  'EXPLAIN',
  'ANALYZE',
  'COPY',
  'PROGRAM',
  "E'\\",
  'U&"',
  '\\',
  '\n',
  ' ',
  '\u0000',
  'é',
  '😀',
  '\uD800',
  'CREATE',
  'FUNCTION',
  'LANGUAGE',
  'plpgsql',
  'sql',
  'RULE',
  'ON',
  'PREPARE',
  'x',
  '1',
  '$1',
  '::',
  '[',
  ']',
  ',',
  'IF',
  'LOOP',
];

function randomInput(rand: () => number): string {
  const mode = Math.floor(rand() * 4);
  if (mode === 0) {
    // raw random code units, including lone surrogates and control characters
    const len = Math.floor(rand() * 200);
    let s = '';
    for (let i = 0; i < len; i++) s += String.fromCharCode(Math.floor(rand() * 0x10000));
    return s;
  }
  if (mode === 1) {
    const len = Math.floor(rand() * 40);
    let s = '';
    for (let i = 0; i < len; i++)
      s += `${TOKENS[Math.floor(rand() * TOKENS.length)]}${rand() < 0.7 ? ' ' : ''}`;
    return s;
  }
  const base = corpus[Math.floor(rand() * corpus.length)] ?? '';
  if (mode === 2) return base.slice(0, Math.floor(rand() * (base.length + 1)));
  const at = Math.floor(rand() * (base.length + 1));
  return base.slice(0, at) + TOKENS[Math.floor(rand() * TOKENS.length)] + base.slice(at);
}

describe('SQL classification fuzz', () => {
  before(() => loadSqlParser());

  it('classifies 5000 random and mutated inputs without throwing', { timeout: 120_000 }, async () => {
    const guard = await createSqlGuard(
      [
        { name: 'no-drop', match: { sqlClasses: ['drop'] }, action: 'block' },
        { name: 'pattern', match: { sqlPattern: '(?i)pg_sleep' }, action: 'alert' },
      ],
      'db',
      { cacheSize: 0 },
    );
    // One seed per run, named in any failure: CHAPERONE_SEED=<seed> replays it.
    await withSeed(({ random }) => {
      for (let i = 0; i < 5000; i++) {
        const input = randomInput(random);
        const result = classifySql(input);
        assert.ok(result.classes.length > 0, `no class for ${JSON.stringify(input)}`);
        assert.equal(result.classes.includes('unparseable'), result.parseError !== undefined);
        const decision = guard.evaluate(input);
        assert.ok(['allow', 'block', 'alert'].includes(decision.action));
      }
    });
    // the parser is still healthy afterwards
    assert.deepEqual(classifySql('DROP TABLE t').classes, ['drop', 'ddl', 'write']);
  });

  it('copes with a large statement', () => {
    const big = `INSERT INTO t VALUES ${Array.from({ length: 5000 }, (_, i) => `(${i}, 'v${i}')`).join(',')}`;
    assert.deepEqual(classifySql(big).classes, ['write']);
    assert.deepEqual(classifySql(`${big}; DELETE FROM t`).classes, [
      'deleteWithoutWhere',
      'multiStatement',
      'write',
    ]);
  });
});
