import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { before, describe, it } from 'node:test';
import { classifySql, loadSqlParser } from './classify.ts';

interface CorpusEntry {
  sql: string;
  classes: string[];
  types?: string[];
  note?: string;
}

const corpus = JSON.parse(
  readFileSync(new URL('./testdata/corpus.json', import.meta.url), 'utf8'),
) as CorpusEntry[];

describe('classifySql corpus', () => {
  before(() => loadSqlParser());
  for (const entry of corpus) {
    it(`${JSON.stringify(entry.sql).slice(0, 100)}${entry.note ? ` (${entry.note})` : ''}`, () => {
      const result = classifySql(entry.sql);
      assert.deepEqual(result.classes, entry.classes);
      if (entry.types) assert.deepEqual(result.statementTypes, entry.types);
      assert.equal(result.parseError !== undefined, entry.classes.includes('unparseable'));
    });
  }
});

describe('classifySql details', () => {
  before(() => loadSqlParser());

  it('names the parse error of unparseable input', () => {
    const result = classifySql('SELEC 1');
    assert.match(result.parseError ?? '', /syntax error at or near "SELEC"/);
  });

  it('survives nesting deeper than the parser allows', () => {
    const deep = `SELECT ${'('.repeat(100_000)}1${')'.repeat(100_000)}`;
    assert.deepEqual(classifySql(deep).classes, ['unparseable']);
    assert.deepEqual(
      classifySql('DELETE FROM t').classes,
      ['deleteWithoutWhere', 'write'],
      'parser still usable',
    );
  });

  it('bounds recursion through nested dynamic SQL', () => {
    let sql = 'DELETE FROM t';
    for (let i = 0; i < 12; i++) sql = `DO $d${i}$ BEGIN EXECUTE ${quoteLiteral(sql)}; END $d${i}$`;
    const result = classifySql(sql);
    assert.ok(result.classes.includes('write'));
    assert.ok(result.classes.includes('ddl'), 'too deep to follow: conservative ddl');
  });
});

function quoteLiteral(s: string): string {
  return `'${s.replaceAll("'", "''")}'`;
}
