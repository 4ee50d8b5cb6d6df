// Guardrail rules for SQL: evaluated in order, first match wins, default allow.
import { RE2JS } from 're2js';
import {
  type Guardrail,
  type GuardrailAction,
  guardrailAppliesTo,
  type SqlClass,
} from '../../../crds/index.ts';
import { classifySql, loadSqlParser, type SqlClassification } from './classify.ts';
import { LEXING_RULE } from './lexing.ts';
import { SHAPE_SAFE_TYPES, sqlShape } from './shape.ts';

export interface SqlDecision {
  action: GuardrailAction;
  /** Name of the rule that matched; absent for the default allow. */
  rule?: string;
  message?: string;
  classes: SqlClass[];
  statementTypes: string[];
  parseError?: string;
  /** Runs code the guard cannot read (see classify.ts). */
  opaque?: boolean;
  /** May change how the server lexes later statements: the session re-reads its settings after it. */
  touchesLexing?: boolean;
  /** Prepared statements SQL PREPARE / DEALLOCATE / DISCARD creates or drops ('*': all). */
  preparedNames?: string[];
}

export interface SqlGuard {
  /** Synchronous and never throws; decisions are frozen and may be shared between calls. */
  evaluate(sql: string): SqlDecision;
}

export interface SqlGuardOptions {
  /** Distinct statements whose decision is remembered (agents repeat their queries). 0 disables. */
  cacheSize?: number;
  /** Statements longer than this (characters) are not cached. */
  cacheMaxLength?: number;
}

interface CompiledRule {
  name: string;
  action: GuardrailAction;
  message?: string;
  classes?: ReadonlySet<SqlClass>;
  statementTypes?: ReadonlySet<string>;
  pattern?: RE2JS;
}

/** Rules meant for other protocols (ssh commands, http paths) never match SQL. */
function appliesToSql(rule: Guardrail): boolean {
  return guardrailAppliesTo(rule.match, 'postgres');
}

export function compileSqlRules(rules: readonly Guardrail[], target: string): CompiledRule[] {
  return rules
    .filter((r) => (r.targets === undefined || r.targets.includes(target)) && appliesToSql(r))
    .map((r) => ({
      name: r.name,
      action: r.action,
      message: r.message,
      classes: r.match.sqlClasses ? new Set(r.match.sqlClasses) : undefined,
      statementTypes: r.match.statementTypes ? new Set(r.match.statementTypes) : undefined,
      pattern: r.match.sqlPattern !== undefined ? RE2JS.compile(r.match.sqlPattern) : undefined,
    }));
}

function matches(rule: CompiledRule, sql: string, c: SqlClassification): boolean {
  if (rule.classes && !c.classes.some((cls) => rule.classes!.has(cls))) return false;
  if (rule.statementTypes && !c.statementTypes.some((t) => rule.statementTypes!.has(t))) return false;
  if (rule.pattern && !rule.pattern.test(sql)) return false;
  return true;
}

export function decide(rules: readonly CompiledRule[], sql: string, c: SqlClassification): SqlDecision {
  const base = {
    classes: Object.freeze(c.classes) as SqlClass[],
    statementTypes: Object.freeze(c.statementTypes) as string[],
    ...(c.parseError !== undefined ? { parseError: c.parseError } : {}),
    ...(c.opaque ? { opaque: true } : {}),
    ...(c.touchesLexing ? { touchesLexing: true } : {}),
    ...(c.preparedNames ? { preparedNames: c.preparedNames } : {}),
  };
  // Built in, before every policy rule: a statement that would make the guard misread the next ones.
  if (c.lexingProblem !== undefined) {
    return Object.freeze({ action: 'block' as const, rule: LEXING_RULE, message: c.lexingProblem, ...base });
  }
  for (const rule of rules) {
    if (matches(rule, sql, c)) {
      return Object.freeze({
        action: rule.action,
        rule: rule.name,
        ...(rule.message !== undefined ? { message: rule.message } : {}),
        ...base,
      });
    }
  }
  return Object.freeze({ action: 'allow' as const, ...base });
}

/** Loads the SQL parser (once per process) and compiles the rules that apply to `target`. */
export async function createSqlGuard(
  rules: readonly Guardrail[],
  target: string,
  options: SqlGuardOptions = {},
): Promise<SqlGuard> {
  await loadSqlParser();
  const compiled = compileSqlRules(rules, target);
  const cacheSize = options.cacheSize ?? 512;
  const cacheMaxLength = options.cacheMaxLength ?? 8192;
  const cache = new Lru<string, SqlDecision>(cacheSize);
  // Statements that differ only in integer literals share one classification (see shape.ts). When no
  // rule looks at the text itself, they share the decision too.
  const shapes = new Lru<string, { c: SqlClassification; decision?: SqlDecision }>(cacheSize);
  const textFree = compiled.every((r) => r.pattern === undefined);
  const classify = (sql: string): SqlClassification => {
    try {
      return classifySql(sql);
    } catch (err) {
      const parseError = `guardrail evaluation failed: ${err instanceof Error ? err.message : String(err)}`;
      return { classes: ['unparseable'], statementTypes: [], parseError };
    }
  };
  const evaluateShaped = (sql: string, shape: string): SqlDecision => {
    const entry = shapes.get(shape);
    if (entry) return entry.decision ?? decide(compiled, sql, entry.c);
    const c = classify(sql);
    const decision = decide(compiled, sql, c);
    const reusable =
      c.parseError === undefined &&
      c.valueDependent !== true &&
      c.statementTypes.length > 0 &&
      c.statementTypes.every((t) => SHAPE_SAFE_TYPES.has(t));
    if (reusable) shapes.set(shape, textFree ? { c, decision } : { c });
    else cache.set(sql, decision);
    return decision;
  };
  return {
    evaluate(sql: string): SqlDecision {
      if (cacheSize === 0 || sql.length > cacheMaxLength) return decide(compiled, sql, classify(sql));
      const hit = cache.get(sql);
      if (hit) return hit;
      const shape = sqlShape(sql);
      if (shape !== undefined) return evaluateShaped(sql, shape);
      const decision = decide(compiled, sql, classify(sql));
      cache.set(sql, decision);
      return decision;
    },
  };
}

/** A bounded map that forgets the least recently used entry. */
class Lru<K, V> {
  private readonly map = new Map<K, V>();
  private readonly size: number;
  constructor(size: number) {
    this.size = size;
  }
  get(key: K): V | undefined {
    const v = this.map.get(key);
    if (v !== undefined) {
      // Map iteration order is insertion order, so the first key is the oldest.
      this.map.delete(key);
      this.map.set(key, v);
    }
    return v;
  }
  set(key: K, value: V): void {
    this.map.set(key, value);
    if (this.map.size > this.size) this.map.delete(this.map.keys().next().value!);
  }
}
