import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Guardrail } from '../../../crds/index.ts';
import { classifySql, loadSqlParser } from './classify.ts';
import { createSqlGuard } from './guard.ts';
import { sqlShape } from './shape.ts';

describe('sqlShape', () => {
  it('replaces standalone small integers by 0', () => {
    assert.equal(
      sqlShape('SELECT abalance FROM pgbench_accounts WHERE aid = 64242;'),
      'SELECT abalance FROM pgbench_accounts WHERE aid = 0;',
    );
    assert.equal(
      sqlShape('UPDATE a SET b = b + -1234 WHERE aid = 5;'),
      'UPDATE a SET b = b + -0 WHERE aid = 0;',
    );
    assert.equal(sqlShape('INSERT INTO h (a, b) VALUES (17, 4)'), 'INSERT INTO h (a, b) VALUES (0, 0)');
    assert.equal(sqlShape('SELECT 1 WHERE x IN (3,4)'), 'SELECT 0 WHERE x IN (0,0)');
  });

  it('keeps identifiers, decimals, exponents, long integers and type modifiers', () => {
    assert.equal(sqlShape('SELECT t1.c2 FROM t1'), undefined);
    assert.equal(sqlShape('SELECT 1.5, .5, 1e5, 0x1F, 1_000, 0'), undefined);
    assert.equal(sqlShape('SELECT 1234567890'), undefined);
    assert.equal(sqlShape('SELECT x::float(0), varchar ( 3 ), f(7)'), undefined);
  });

  it('gives no shape to text with strings, identifiers in quotes, parameters, escapes or comments', () => {
    for (const sql of [
      "SELECT 1, 'a'",
      'SELECT 1 FROM "t"',
      'SELECT $1 + 2',
      'DO $$BEGIN PERFORM 1; END$$',
      'SELECT 1 -- 2',
      'SELECT 1 /* 2 */',
      'SELECT 1\\',
      'SELECT 1\0',
    ])
      assert.equal(sqlShape(sql), undefined, sql);
  });
});

describe('guard with shapes', () => {
  const rules: Guardrail[] = [
    { name: 'no-mass-delete', match: { sqlClasses: ['deleteWithoutWhere'] }, action: 'block' },
    { name: 'explained-writes', match: { sqlClasses: ['write'] }, action: 'alert' },
    { name: 'answer', match: { sqlPattern: '= 42\\b' }, action: 'block' },
  ];

  it('decides every statement as its own classification would', async () => {
    await loadSqlParser();
    const guard = await createSqlGuard(rules, 'db');
    const texts = [
      'SELECT a FROM t WHERE id = 1',
      'SELECT a FROM t WHERE id = 42',
      'SELECT a FROM t WHERE id = 43',
      'EXPLAIN (ANALYZE 0) DELETE FROM t',
      'EXPLAIN (ANALYZE 1) DELETE FROM t',
      'EXPLAIN (ANALYZE 0) DELETE FROM t',
      'SELECT 1::float(0)',
      'SELECT 1::float(5)',
      'SELECT 1 FROM t LIMIT 5',
      'DELETE FROM t WHERE 1 = 1',
      'SELECT 2 FROM',
      'SELECT 3 FROM',
    ];
    for (const sql of [...texts, ...texts]) {
      const d = guard.evaluate(sql);
      const c = classifySql(sql);
      assert.deepEqual([...d.classes], c.classes, sql);
      assert.deepEqual([...d.statementTypes], c.statementTypes, sql);
    }
    assert.equal(
      guard.evaluate('SELECT a FROM t WHERE id = 42').rule,
      'answer',
      'patterns see the real text',
    );
    assert.equal(guard.evaluate('SELECT a FROM t WHERE id = 41').action, 'allow');
    assert.equal(guard.evaluate('EXPLAIN (ANALYZE 1) DELETE FROM t').rule, 'no-mass-delete');
    assert.equal(guard.evaluate('EXPLAIN (ANALYZE 0) DELETE FROM t').action, 'allow');
  });
});
