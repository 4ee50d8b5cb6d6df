import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Guardrail } from '../../../crds/index.ts';
import { createSqlGuard } from './guard.ts';

const rules: Guardrail[] = [
  { name: 'allow-reads', match: { sqlClasses: ['read'] }, action: 'allow' },
  {
    name: 'no-drop',
    match: { sqlClasses: ['drop', 'truncate'] },
    action: 'block',
    message: 'dropping is not allowed',
  },
  {
    name: 'no-mass-delete',
    match: { sqlClasses: ['deleteWithoutWhere', 'updateWithoutWhere'] },
    action: 'block',
  },
  { name: 'ssh-only', match: { commandPattern: '.*' }, action: 'block' },
  { name: 'vacuum-needs-ok', match: { statementTypes: ['VacuumStmt'] }, action: 'requireApproval' },
  { name: 'prod-writes', targets: ['prod'], match: { sqlClasses: ['write'] }, action: 'requireApproval' },
  { name: 'payments', match: { sqlPattern: '(?i)\\bpayments\\b', sqlClasses: ['write'] }, action: 'alert' },
  { name: 'garbage', match: { sqlClasses: ['unparseable'] }, action: 'block' },
];

describe('createSqlGuard', () => {
  it('blocks DROP TABLE with the rule name and message', async () => {
    const guard = await createSqlGuard(rules, 'db');
    const d = guard.evaluate('DROP TABLE users');
    assert.equal(d.action, 'block');
    assert.equal(d.rule, 'no-drop');
    assert.equal(d.message, 'dropping is not allowed');
    assert.deepEqual(d.classes, ['drop', 'ddl', 'write']);
    assert.deepEqual(d.statementTypes, ['DropStmt']);
  });

  it('blocks DELETE without WHERE, also hidden in a CTE, but not with a WHERE', async () => {
    const guard = await createSqlGuard(rules, 'db');
    assert.equal(guard.evaluate('DELETE FROM t').rule, 'no-mass-delete');
    assert.equal(guard.evaluate('WITH x AS (DELETE FROM t RETURNING *) SELECT * FROM x').action, 'block');
    const scoped = guard.evaluate('DELETE FROM t WHERE id = 1');
    assert.equal(scoped.action, 'allow');
    assert.equal(scoped.rule, undefined, 'default allow names no rule');
  });

  it('does not let a read rule allow a read mixed with a write', async () => {
    const guard = await createSqlGuard(rules, 'db');
    assert.equal(guard.evaluate('SELECT 1').rule, 'allow-reads');
    assert.equal(guard.evaluate('SELECT 1; DROP TABLE t').rule, 'no-drop');
  });

  it('ignores rules of other protocols and rules for other targets', async () => {
    const db = await createSqlGuard(rules, 'db');
    assert.equal(db.evaluate('INSERT INTO t VALUES (1)').action, 'allow');
    const prod = await createSqlGuard(rules, 'prod');
    const d = prod.evaluate('INSERT INTO t VALUES (1)');
    assert.equal(d.action, 'requireApproval');
    assert.equal(d.rule, 'prod-writes');
  });

  it('matches statement types and RE2 patterns together with classes', async () => {
    const guard = await createSqlGuard(rules, 'db');
    assert.equal(guard.evaluate('VACUUM t').rule, 'vacuum-needs-ok');
    assert.equal(guard.evaluate('UPDATE Payments SET a = 1 WHERE id = 2').rule, 'payments');
    assert.equal(guard.evaluate('SELECT * FROM payments').rule, 'allow-reads', 'pattern alone is not enough');
    assert.equal(guard.evaluate('UPDATE payment_methods SET a = 1 WHERE id = 2').action, 'allow');
  });

  it('lets a policy block unparseable SQL and reports the parse error', async () => {
    const guard = await createSqlGuard(rules, 'db');
    const d = guard.evaluate('DROP TABLE');
    assert.equal(d.rule, 'garbage');
    assert.deepEqual(d.classes, ['unparseable']);
    assert.match(d.parseError ?? '', /syntax error/);
  });

  it('an empty match matches everything; no rules allow everything', async () => {
    const all = await createSqlGuard([{ name: 'everything', match: {}, action: 'alert' }], 'db');
    assert.equal(all.evaluate('SELECT 1').action, 'alert');
    const none = await createSqlGuard([], 'db');
    assert.equal(none.evaluate('DROP TABLE t').action, 'allow');
  });

  it('caches decisions per statement text without mixing them up', async () => {
    const guard = await createSqlGuard(rules, 'db', { cacheSize: 2 });
    const first = guard.evaluate('DROP TABLE a');
    assert.equal(guard.evaluate('DROP TABLE a'), first);
    guard.evaluate('SELECT x');
    guard.evaluate('DELETE FROM t');
    assert.notEqual(guard.evaluate('DROP TABLE a'), first, 'evicted as the least recently used');
    assert.equal(guard.evaluate('DELETE FROM t').rule, 'no-mass-delete');
    assert.ok(Object.isFrozen(first) && Object.isFrozen(first.classes));
  });

  it('refuses statements that change how the server lexes, before any policy rule', async () => {
    const guard = await createSqlGuard([{ name: 'allow-all', match: {}, action: 'allow' }], 'db');
    for (const sql of [
      'SET standard_conforming_strings = off',
      'SET LOCAL standard_conforming_strings TO 0',
      "SET client_encoding = 'SJIS'",
      "SET NAMES 'BIG5'",
      "SELECT set_config('standard_conforming_strings', 'off', false)",
      "SELECT set_config('client_' || 'encoding', 'GBK', false)",
      "SELECT set_config($1, 'x', false)",
      "UPDATE pg_settings SET setting = 'off' WHERE name = 'standard_conforming_strings'",
      "ALTER ROLE app SET client_encoding = 'JOHAB'",
      "CREATE FUNCTION f() RETURNS int LANGUAGE sql SET standard_conforming_strings = off AS 'SELECT 1'",
    ]) {
      const d = guard.evaluate(sql);
      assert.equal(d.action, 'block', sql);
      assert.equal(d.rule, 'lexing-settings', sql);
    }
    for (const sql of [
      'SET standard_conforming_strings = on',
      "SET client_encoding = 'UTF8'",
      'RESET client_encoding',
      'RESET ALL',
    ]) {
      const d = guard.evaluate(sql);
      assert.equal(d.action, 'allow', sql);
      assert.equal(d.touchesLexing, true, sql);
    }
    assert.equal(guard.evaluate('SELECT 1').touchesLexing, undefined);
    assert.equal(
      guard.evaluate("SELECT set_config('search_path', 'public', false)").touchesLexing,
      undefined,
    );
  });

  it('never shares a folded predicate between statements of the same shape', async () => {
    const guard = await createSqlGuard(rules, 'db');
    assert.equal(guard.evaluate('DELETE FROM t WHERE id = 1 OR 1 = 2').action, 'allow');
    assert.equal(guard.evaluate('DELETE FROM t WHERE id = 1 OR 1 = 1').rule, 'no-mass-delete');
    assert.equal(guard.evaluate('DELETE FROM t WHERE id = 7 OR 3 = 4').action, 'allow');
  });

  it('stops opaque code with a drop rule', async () => {
    const guard = await createSqlGuard(rules, 'db');
    assert.equal(guard.evaluate("DO $$ BEGIN EXECUTE 'DR' || 'OP TABLE t'; END $$").rule, 'no-drop');
    assert.equal(guard.evaluate('CALL cleanup()').rule, 'no-drop');
    assert.equal(guard.evaluate('SELECT evil()').rule, 'no-drop');
    assert.equal(guard.evaluate('SELECT count(*) FROM t').rule, 'allow-reads');
  });
});
