// Classifies SQL by walking the real PostgreSQL parse tree (libpg_query compiled to WASM), never by
// substring matching: a DELETE hidden in a CTE, a rule action, a function body or an
// EXPLAIN ANALYZE is still found, and text that merely mentions "drop table" in a string is not.
//
// Choices a policy author should know (also in docs/sidecar.md):
// - `read` is given only when nothing in the input can change anything; every class that changes
//   something (drop, truncate, ..., ddl) also carries `write`. So "allow read, block write" cannot be
//   fooled by mixing a SELECT with a DROP.
// - Every statement that is neither a query, DML nor a session command is `ddl` (GRANT, CREATE ROLE,
//   VACUUM, ALTER SYSTEM, ...). Conservative on purpose.
// - Plain EXPLAIN does not run its statement: its inner statement shows in statementTypes but adds
//   no classes. EXPLAIN ANALYZE runs it and is classified like it.
// - PREPARE is classified by the statement it prepares; EXECUTE of a prepared name is then `read`
//   (the statement was judged when it was prepared, also for the extended protocol's Parse).
// - Function bodies (CREATE FUNCTION/PROCEDURE, SQL or PL/pgSQL) and rule actions are classified as
//   if they ran, because they run later under any innocent-looking call.
// - DO blocks are `write` (arbitrary code). PL/pgSQL bodies are parsed (parsePlPgSQL) and their static
//   statements classified; dynamic EXECUTE of anything but a string literal, other languages, and
//   bodies that do not parse add `ddl` + `write`.
// - Calls of built-in functions with side effects (nextval, pg_terminate_backend, lo_import,
//   dblink_exec, set_config, ...) are `write`. User-defined functions are opaque: a policy that must
//   forbid them matches statementTypes or sqlPattern, or relies on database permissions.
// - Input that does not parse, or contains a NUL byte (the C parser would silently stop there), is
//   `unparseable` and nothing else.
import { loadModule, parsePlPgSQLSync, parseSync } from 'libpg-query';
import { type SqlClass, sqlClassSchema } from '../../../crds/index.ts';
import { BUILTIN_FUNCTIONS } from './builtins.ts';
import { LEXING_SETTINGS, lexingSettingProblem } from './lexing.ts';

export interface SqlClassification {
  classes: SqlClass[];
  /** Parse-tree node names of every statement found (top level and nested), first-seen order. */
  statementTypes: string[];
  /** Why the input is unparseable. */
  parseError?: string;
  /**
   * Runs code the guard cannot read (dynamic SQL, other languages, user functions and procedures):
   * it carries every destructive class, and the server's session settings are unknown afterwards.
   */
  opaque?: boolean;
  /** Changes (or may change) a setting that decides how later statements are lexed (lexing.ts). */
  touchesLexing?: boolean;
  /** Why the statement must be refused whatever the policy says: it would make the guard misread later ones. */
  lexingProblem?: string;
  /** The classes depend on the value of a constant (1 = 1): not to be shared between shapes (shape.ts). */
  valueDependent?: boolean;
  /** Names of prepared statements that SQL PREPARE / DEALLOCATE / DISCARD creates or drops; '*' for all. */
  preparedNames?: string[];
}

let loaded: Promise<void> | undefined;
/** Loads the WASM parser once per process; later parses are synchronous. */
export function loadSqlParser(): Promise<void> {
  loaded ??= loadModule();
  return loaded;
}

const MAX_NESTING = 16;

const WRITING_CLASSES: ReadonlySet<SqlClass> = new Set<SqlClass>([
  'drop',
  'truncate',
  'deleteWithoutWhere',
  'updateWithoutWhere',
  'alterRole',
  'createRole',
  'grant',
  'copyToProgram',
  'copyFromProgram',
  'ddl',
]);

/** Statements that are not DDL: queries, DML and session commands (their effects handled below). */
const NOT_DDL: ReadonlySet<string> = new Set([
  'SelectStmt',
  'InsertStmt',
  'UpdateStmt',
  'DeleteStmt',
  'MergeStmt',
  'CopyStmt',
  'ExplainStmt',
  'PrepareStmt',
  'ExecuteStmt',
  'DeallocateStmt',
  'TransactionStmt',
  'VariableSetStmt',
  'VariableShowStmt',
  'DiscardStmt',
  'DeclareCursorStmt',
  'FetchStmt',
  'ClosePortalStmt',
  'ListenStmt',
  'UnlistenStmt',
  'NotifyStmt',
  'LockStmt',
  'CallStmt',
  'DoStmt',
  'ConstraintsSetStmt',
  'ReturnStmt',
  'PLAssignStmt',
]);

const ALWAYS_WRITE: ReadonlySet<string> = new Set([
  'InsertStmt',
  'MergeStmt',
  'NotifyStmt',
  'LockStmt',
  'CallStmt',
  'DoStmt',
]);

const DROPPING: ReadonlySet<string> = new Set([
  'DropStmt',
  'DropdbStmt',
  'DropRoleStmt',
  'DropOwnedStmt',
  'DropTableSpaceStmt',
  'DropSubscriptionStmt',
  'DropUserMappingStmt',
]);

/** Built-in functions that change state although called from a SELECT. */
const SIDE_EFFECT_FUNCTIONS: ReadonlySet<string> = new Set([
  'nextval',
  'setval',
  'set_config',
  'pg_terminate_backend',
  'pg_cancel_backend',
  'pg_reload_conf',
  'pg_rotate_logfile',
  'pg_switch_wal',
  'pg_promote',
  'pg_create_restore_point',
  'pg_create_physical_replication_slot',
  'pg_create_logical_replication_slot',
  'pg_drop_replication_slot',
  'pg_copy_physical_replication_slot',
  'pg_copy_logical_replication_slot',
  'pg_logical_emit_message',
  'pg_replication_origin_create',
  'pg_replication_origin_drop',
  'pg_stat_reset',
  'pg_stat_reset_shared',
  'pg_stat_reset_single_table_counters',
  'pg_import_system_collations',
  'lo_import',
  'lo_export',
  'lo_unlink',
  'lo_create',
  'lo_creat',
  'lo_put',
  'lo_from_bytea',
  'lo_truncate',
  'lo_truncate64',
  'lowrite',
  'dblink',
  'dblink_exec',
  'dblink_send_query',
  'dblink_open',
  'pg_file_write',
  'pg_file_unlink',
  'pg_file_rename',
  'pg_file_sync',
]);

const ROLE_SETTINGS: ReadonlySet<string> = new Set(['role', 'session_authorization']);

type Node = Record<string, unknown>;

interface Collector {
  classes: Set<SqlClass>;
  types: string[];
  seenTypes: Set<string>;
  opaque: boolean;
  touchesLexing: boolean;
  lexingProblem: string | undefined;
  valueDependent: boolean;
  preparedNames: string[];
}

function newCollector(): Collector {
  return {
    classes: new Set(),
    types: [],
    seenTypes: new Set(),
    opaque: false,
    touchesLexing: false,
    lexingProblem: undefined,
    valueDependent: false,
    preparedNames: [],
  };
}

function isObject(value: unknown): value is Node {
  return typeof value === 'object' && value !== null;
}

function add(c: Collector, cls: SqlClass): void {
  c.classes.add(cls);
  if (WRITING_CLASSES.has(cls)) c.classes.add('write');
}

/** Code the guard cannot read may do anything: every destructive class, so a `drop` rule stops it. */
function addOpaque(c: Collector): void {
  c.opaque = true;
  for (const cls of WRITING_CLASSES) c.classes.add(cls);
  c.classes.add('write');
}

function lexingProblem(c: Collector, problem: string | undefined): void {
  c.touchesLexing = true;
  if (problem !== undefined) c.lexingProblem ??= problem;
}

function addType(c: Collector, type: string): void {
  if (!c.seenTypes.has(type)) {
    c.seenTypes.add(type);
    c.types.push(type);
  }
}

function stringValue(node: unknown): string | undefined {
  if (!isObject(node)) return undefined;
  const s = node.String;
  if (isObject(s) && typeof s.sval === 'string') return s.sval;
  return undefined;
}

/** Options of DO / CREATE FUNCTION as a name -> DefElem.arg map. */
function defElems(list: unknown): Map<string, unknown> {
  const out = new Map<string, unknown>();
  if (!Array.isArray(list)) return out;
  for (const item of list) {
    if (!isObject(item) || !isObject(item.DefElem)) continue;
    const { defname, arg } = item.DefElem;
    if (typeof defname === 'string') out.set(defname, arg);
  }
  return out;
}

function explainRunsStatement(options: unknown): boolean {
  if (!defElems(options).has('analyze')) return false;
  const arg = defElems(options).get('analyze');
  if (!isObject(arg)) return true;
  if (isObject(arg.Boolean)) return arg.Boolean.boolval === true;
  if (isObject(arg.Integer)) return typeof arg.Integer.ival === 'number' && arg.Integer.ival !== 0;
  const s = stringValue(arg)?.toLowerCase();
  return s === undefined || !['false', 'off', 'no', '0'].includes(s);
}

function lastName(names: unknown): string | undefined {
  if (!Array.isArray(names) || names.length === 0) return undefined;
  return stringValue(names[names.length - 1]);
}

/**
 * Walks one parsed tree iteratively (deep trees must not exhaust the JS stack), classifying every
 * statement node in it. `text` is the source of the top-level statement, needed to hand PL/pgSQL
 * bodies to their own parser.
 */
function walk(root: unknown, text: string, c: Collector, depth: number): void {
  const stack: { node: unknown; inert: boolean }[] = [{ node: root, inert: false }];
  while (stack.length > 0) {
    const { node, inert } = stack.pop()!;
    if (Array.isArray(node)) {
      for (let i = node.length - 1; i >= 0; i--) stack.push({ node: node[i], inert });
      continue;
    }
    if (!isObject(node)) continue;
    for (const [key, value] of Object.entries(node)) {
      if (!isObject(value)) continue;
      let childInert = inert;
      if (key.endsWith('Stmt') && key[0]! >= 'A' && key[0]! <= 'Z') {
        addType(c, key);
        if (!inert) classifyNode(key, value, text, c, depth);
        if (key === 'ExplainStmt' && !explainRunsStatement(value.options)) childInert = true;
      } else if (key === 'FuncCall' && !inert) {
        classifyCall(value, c);
      }
      stack.push({ node: value, inert: childInert });
    }
  }
}

/** A function call: built-in and harmless, built-in with side effects, or user code (opaque). */
function classifyCall(call: Node, c: Collector): void {
  const names = Array.isArray(call.funcname) ? call.funcname.map(stringValue) : [];
  const name = names[names.length - 1];
  const schema = names.length > 1 ? names[names.length - 2] : 'pg_catalog';
  if (name === undefined || schema !== 'pg_catalog' || !BUILTIN_FUNCTIONS.has(name)) {
    addOpaque(c);
    return;
  }
  if (SIDE_EFFECT_FUNCTIONS.has(name)) add(c, 'write');
  if (name === 'set_config') {
    const args = Array.isArray(call.args) ? call.args : [];
    const setting = constantString(args[0]);
    if (setting === undefined) {
      lexingProblem(c, 'set_config() with a computed setting name may change how statements are lexed');
    } else if (LEXING_SETTINGS.has(setting.toLowerCase())) {
      const value = constantString(args[1]);
      lexingProblem(
        c,
        value === undefined
          ? `set_config('${setting}', ...) with a computed value may change how statements are lexed`
          : lexingSettingProblem(setting, value),
      );
    }
  }
}

/** A string or number constant (possibly cast), as text; undefined for anything computed. */
function constantString(node: unknown): string | undefined {
  if (!isObject(node)) return undefined;
  if (isObject(node.TypeCast)) return constantString(node.TypeCast.arg);
  const k = node.A_Const;
  if (!isObject(k)) return undefined;
  if (isObject(k.sval)) return typeof k.sval.sval === 'string' ? k.sval.sval : '';
  if (isObject(k.ival)) return String(k.ival.ival ?? 0);
  if (isObject(k.fval)) return String(k.fval.fval ?? '0');
  if (isObject(k.boolval)) return k.boolval.boolval === true ? 'true' : 'false';
  return undefined;
}

function classifyNode(type: string, node: Node, text: string, c: Collector, depth: number): void {
  if (!NOT_DDL.has(type)) add(c, 'ddl');
  if (ALWAYS_WRITE.has(type)) add(c, 'write');
  if (DROPPING.has(type)) add(c, 'drop');
  // ALTER ROLE / DATABASE / SYSTEM ... SET hold their SET without the VariableSetStmt wrapper.
  if (isObject(node.setstmt)) classifySetting(node.setstmt, c);
  switch (type) {
    case 'DeleteStmt':
      add(c, 'write');
      if (changesEveryRow(node.whereClause, c)) add(c, 'deleteWithoutWhere');
      break;
    case 'UpdateStmt':
      add(c, 'write');
      if (changesEveryRow(node.whereClause, c)) add(c, 'updateWithoutWhere');
      if (isObject(node.relation) && node.relation.relname === 'pg_settings') {
        lexingProblem(c, 'UPDATE pg_settings changes session settings, including how statements are lexed');
      }
      break;
    case 'MergeStmt':
      // ON is a join condition, not a filter: how many rows match cannot be told from the text.
      for (const when of Array.isArray(node.mergeWhenClauses) ? node.mergeWhenClauses : []) {
        const w = isObject(when) ? when.MergeWhenClause : undefined;
        if (!isObject(w)) continue;
        if (w.commandType === 'CMD_DELETE') add(c, 'deleteWithoutWhere');
        if (w.commandType === 'CMD_UPDATE') add(c, 'updateWithoutWhere');
      }
      break;
    case 'CallStmt':
      addOpaque(c);
      break;
    case 'ExecuteStmt':
      // The prepared statement was judged at PREPARE; what it leaves in the session is not known here.
      c.touchesLexing = true;
      break;
    case 'DiscardStmt':
      c.touchesLexing = true;
      if (node.target === 'DISCARD_ALL') c.preparedNames.push('*');
      break;
    case 'PrepareStmt':
    case 'DeallocateStmt':
      c.preparedNames.push(typeof node.name === 'string' ? node.name : '*');
      break;
    case 'SelectStmt':
      if (node.intoClause) add(c, 'ddl');
      break;
    case 'TruncateStmt':
      add(c, 'truncate');
      add(c, 'deleteWithoutWhere');
      break;
    case 'DropRoleStmt':
    case 'AlterRoleStmt':
    case 'AlterRoleSetStmt':
      add(c, 'alterRole');
      break;
    case 'RenameStmt':
      if (node.renameType === 'OBJECT_ROLE') add(c, 'alterRole');
      break;
    case 'VariableSetStmt':
      if (node.kind === 'VAR_SET_VALUE' && typeof node.name === 'string' && ROLE_SETTINGS.has(node.name)) {
        add(c, 'alterRole');
      }
      classifySetting(node, c);
      break;
    case 'CreateRoleStmt':
      add(c, 'createRole');
      break;
    case 'GrantStmt':
    case 'GrantRoleStmt':
    case 'AlterDefaultPrivilegesStmt':
      add(c, 'grant');
      break;
    case 'AlterTableStmt':
      if (
        Array.isArray(node.cmds) &&
        node.cmds.some(
          (cmd) =>
            isObject(cmd) && isObject(cmd.AlterTableCmd) && cmd.AlterTableCmd.subtype === 'AT_DropColumn',
        )
      ) {
        add(c, 'drop');
      }
      break;
    case 'CopyStmt': {
      const from = node.is_from === true;
      if (node.is_program === true) add(c, from ? 'copyFromProgram' : 'copyToProgram');
      // COPY FROM anything writes a table; COPY TO a server file writes that file.
      if (from || typeof node.filename === 'string') add(c, 'write');
      break;
    }
    case 'DoStmt':
      classifyProceduralBody(node.args, text, c, depth);
      break;
    case 'CreateFunctionStmt':
      classifyProceduralBody(node.options, text, c, depth);
      break;
  }
}

/** Body of DO or CREATE FUNCTION; `options` holds `language` and `as`. */
function classifyProceduralBody(options: unknown, text: string, c: Collector, depth: number): void {
  const opts = defElems(options);
  const language = (stringValue(opts.get('language')) ?? 'plpgsql').toLowerCase();
  const as = opts.get('as');
  // CREATE FUNCTION ... AS 'body' gives a List of strings (a second one is a C symbol name).
  const list = isObject(as) && isObject(as.List) ? as.List.items : undefined;
  const body = Array.isArray(list) ? stringValue(list[0]) : stringValue(as);
  if (body === undefined) return; // BEGIN ATOMIC bodies are part of the tree and walked already
  if (language === 'sql') {
    classifyNested(body, c, depth + 1);
  } else if (language === 'plpgsql') {
    classifyPlpgsql(text, c, depth + 1);
  } else {
    addOpaque(c);
  }
}

function classifyPlpgsql(text: string, c: Collector, depth: number): void {
  if (depth > MAX_NESTING) {
    addOpaque(c);
    return;
  }
  let tree: unknown;
  try {
    tree = parsePlPgSQLSync(text);
  } catch {
    addOpaque(c);
    return;
  }
  const stack: unknown[] = [tree];
  while (stack.length > 0) {
    const node = stack.pop();
    if (Array.isArray(node)) {
      for (const item of node) stack.push(item);
      continue;
    }
    if (!isObject(node)) continue;
    for (const [key, value] of Object.entries(node)) {
      if (!isObject(value)) continue;
      if (key === 'PLpgSQL_stmt_dynexecute' || key === 'PLpgSQL_stmt_dynfors') {
        classifyDynamicSql(value.query, c, depth);
        if (value.params !== undefined) stack.push(value.params);
        continue;
      }
      if (key === 'dynquery') {
        // OPEN ... FOR EXECUTE and RETURN QUERY EXECUTE
        classifyDynamicSql(value, c, depth);
        continue;
      }
      if (key === 'PLpgSQL_expr' && typeof value.query === 'string') {
        // parseMode 0 is a whole SQL statement; the others are expressions (conditions, assignments).
        if (value.parseMode === undefined || value.parseMode === 0) classifyNested(value.query, c, depth + 1);
        else classifyExpression(value.query, c, depth + 1);
        continue;
      }
      stack.push(value);
    }
  }
}

/** EXECUTE 'literal' is classified as its literal; any computed string could be anything. */
function classifyDynamicSql(expr: unknown, c: Collector, depth: number): void {
  const query = isObject(expr) && isObject(expr.PLpgSQL_expr) ? expr.PLpgSQL_expr.query : undefined;
  const literal = typeof query === 'string' ? stringLiteral(query) : undefined;
  if (literal === undefined) {
    addOpaque(c);
    return;
  }
  classifyNested(literal, c, depth + 1);
}

function stringLiteral(expression: string): string | undefined {
  try {
    const stmt = parseSync(`SELECT ${expression}`).stmts?.[0]?.stmt as Node | undefined;
    const select = stmt?.SelectStmt as Node | undefined;
    const targets = select?.targetList;
    if (!Array.isArray(targets) || targets.length !== 1 || select?.fromClause) return undefined;
    const val = (targets[0] as Node).ResTarget as Node | undefined;
    const constant = (val?.val as Node | undefined)?.A_Const as Node | undefined;
    const sval = constant?.sval as Node | undefined;
    return typeof sval?.sval === 'string' ? sval.sval : undefined;
  } catch {
    return undefined;
  }
}

/** A PL/pgSQL expression: only its function calls matter (it cannot hold a statement). */
function classifyExpression(expression: string, c: Collector, depth: number): void {
  let tree: unknown;
  try {
    tree = parseSync(`SELECT ${expression}`);
  } catch {
    // Assignments ("x := ...") and cursor arguments are not bare expressions; try the right side.
    const assign = expression.indexOf(':=');
    if (assign >= 0) classifyExpression(expression.slice(assign + 2), c, depth);
    return;
  }
  walk(tree, expression, c, depth);
}

/** SQL found inside other SQL (function bodies, PL/pgSQL statements, EXECUTE literals). */
function classifyNested(sql: string, c: Collector, depth: number): void {
  if (depth > MAX_NESTING || sql.includes('\0')) {
    addOpaque(c);
    return;
  }
  let stmts: ReturnType<typeof splitStatements>;
  try {
    stmts = splitStatements(sql);
  } catch {
    addOpaque(c);
    return;
  }
  for (const { stmt, text } of stmts) walk(stmt, text, c, depth);
}

/** Parses and pairs each top-level statement with its own source text (locations are UTF-8 bytes). */
function splitStatements(sql: string): { stmt: unknown; text: string }[] {
  const result = parseSync(sql);
  const stmts = Array.isArray(result.stmts) ? result.stmts : [];
  if (stmts.length <= 1) return stmts.map((s) => ({ stmt: s.stmt, text: sql }));
  const bytes = Buffer.from(sql, 'utf8');
  return stmts.map((s) => {
    const start = s.stmt_location ?? 0;
    const end = s.stmt_len ? start + s.stmt_len : bytes.length;
    return { stmt: s.stmt, text: bytes.subarray(start, end).toString('utf8') };
  });
}

/**
 * Classifies SQL text (one simple-protocol Query message or one Parse). Never throws: any failure
 * of the parser makes the input `unparseable`. Requires loadSqlParser() to have resolved.
 */
export function classifySql(sql: string): SqlClassification {
  if (sql.includes('\0')) {
    return { classes: ['unparseable'], statementTypes: [], parseError: 'statement contains a NUL byte' };
  }
  if (sql.trim() === '') return { classes: ['read'], statementTypes: [] };
  let stmts: ReturnType<typeof splitStatements>;
  try {
    stmts = splitStatements(sql);
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    return { classes: ['unparseable'], statementTypes: [], parseError: message };
  }
  const c = newCollector();
  try {
    for (const { stmt, text } of stmts) walk(stmt, text, c, 0);
  } catch (err) {
    // Defensive: the walk only reads plain JSON, but a policy decision must never throw.
    const message = err instanceof Error ? err.message : String(err);
    return {
      classes: ['unparseable'],
      statementTypes: c.types,
      parseError: `classification failed: ${message}`,
    };
  }
  if (stmts.length > 1) c.classes.add('multiStatement');
  if (!c.classes.has('write')) c.classes.add('read');
  return {
    classes: ORDER.filter((cls) => c.classes.has(cls)),
    statementTypes: c.types,
    ...(c.opaque ? { opaque: true } : {}),
    ...(c.touchesLexing || c.opaque ? { touchesLexing: true } : {}),
    ...(c.lexingProblem !== undefined ? { lexingProblem: c.lexingProblem } : {}),
    ...(c.valueDependent ? { valueDependent: true } : {}),
    ...(c.preparedNames.length > 0 ? { preparedNames: c.preparedNames } : {}),
  };
}

// The order of the CRD's enum: most specific first, as recorded and shown.
const ORDER: readonly SqlClass[] = sqlClassSchema.options;

/** SET / SET LOCAL / RESET / SET NAMES, also inside CREATE FUNCTION ... SET and ALTER ROLE ... SET. */
function classifySetting(node: Node, c: Collector): void {
  if (node.kind === 'VAR_RESET_ALL') {
    c.touchesLexing = true; // back to the values pinned in the startup packet
    return;
  }
  const name = typeof node.name === 'string' ? node.name.toLowerCase() : undefined;
  if (name === undefined || !LEXING_SETTINGS.has(name)) return;
  c.touchesLexing = true;
  // RESET, DEFAULT and FROM CURRENT go back to (or keep) the session's value, pinned at startup.
  if (node.kind !== 'VAR_SET_VALUE') return;
  const args = Array.isArray(node.args) ? node.args : [];
  const value = args.length === 1 ? constantString(args[0]) : undefined;
  lexingProblem(
    c,
    value === undefined ? `SET ${name} to a list or computed value` : lexingSettingProblem(name, value),
  );
}

/**
 * Whether a DELETE / UPDATE with this WHERE changes every row (or none): no WHERE, a predicate that
 * is true after folding constants (WHERE true, 1 = 1, x IS NOT NULL OR true), or one that reads no
 * column at all (its value is the same for every row). WHERE CURRENT OF names one row.
 */
export function changesEveryRow(where: unknown, state: { valueDependent: boolean }): boolean {
  if (!isObject(where)) return true;
  if (isObject(where.CurrentOfExpr)) return false;
  if (fold(where, state) === true) return true;
  return !containsKey(where, 'ColumnRef');
}

function containsKey(root: unknown, wanted: string): boolean {
  const stack: unknown[] = [root];
  while (stack.length > 0) {
    const node = stack.pop();
    if (Array.isArray(node)) {
      for (const item of node) stack.push(item);
      continue;
    }
    if (!isObject(node)) continue;
    for (const [key, value] of Object.entries(node)) {
      if (key === wanted) return true;
      if (isObject(value)) stack.push(value);
    }
  }
  return false;
}

type Folded = boolean | number | string | null | undefined;

const TRUE_WORDS = new Set(['t', 'true', 'y', 'yes', 'on', '1']);
const FALSE_WORDS = new Set(['f', 'false', 'n', 'no', 'off', '0']);

/** Constant folding of the predicate forms that matter; undefined when the value depends on a row. */
function fold(node: unknown, state: { valueDependent: boolean }, depth = 0): Folded {
  if (!isObject(node) || depth > 64) return undefined;
  if (isObject(node.A_Const)) {
    const k = node.A_Const;
    if (k.isnull === true) return null;
    if (isObject(k.boolval)) return k.boolval.boolval === true;
    if (isObject(k.ival)) return typeof k.ival.ival === 'number' ? k.ival.ival : 0;
    if (isObject(k.fval)) return Number(k.fval.fval ?? 0);
    if (isObject(k.sval)) return typeof k.sval.sval === 'string' ? k.sval.sval : '';
    return undefined;
  }
  if (isObject(node.TypeCast)) {
    const value = fold(node.TypeCast.arg, state, depth + 1);
    const type = lastName(isObject(node.TypeCast.typeName) ? node.TypeCast.typeName.names : undefined);
    if (type === 'bool' || type === 'boolean') {
      const word = String(value).toLowerCase();
      if (TRUE_WORDS.has(word)) return true;
      if (FALSE_WORDS.has(word)) return false;
      return undefined;
    }
    return value;
  }
  if (isObject(node.BoolExpr)) {
    const args = Array.isArray(node.BoolExpr.args)
      ? node.BoolExpr.args.map((a) => fold(a, state, depth + 1))
      : [];
    switch (node.BoolExpr.boolop) {
      case 'AND_EXPR':
        if (args.some((a) => a === false)) return false;
        return args.every((a) => a === true) ? true : undefined;
      case 'OR_EXPR':
        if (args.some((a) => a === true)) return true;
        return args.every((a) => a === false) ? false : undefined;
      case 'NOT_EXPR':
        return typeof args[0] === 'boolean' ? !args[0] : undefined;
    }
    return undefined;
  }
  if (isObject(node.NullTest)) {
    const value = fold(node.NullTest.arg, state, depth + 1);
    if (value === undefined) return undefined;
    return node.NullTest.nulltesttype === 'IS_NOT_NULL' ? value !== null : value === null;
  }
  if (isObject(node.BooleanTest)) {
    const value = fold(node.BooleanTest.arg, state, depth + 1);
    if (typeof value !== 'boolean') return undefined;
    switch (node.BooleanTest.booltesttype) {
      case 'IS_TRUE':
      case 'IS_NOT_FALSE':
        return value;
      case 'IS_FALSE':
      case 'IS_NOT_TRUE':
        return !value;
    }
    return undefined;
  }
  if (isObject(node.A_Expr) && node.A_Expr.kind === 'AEXPR_OP') {
    const op = lastName(node.A_Expr.name);
    const { lexpr, rexpr } = node.A_Expr;
    // x = x holds for every row where x is not null.
    if (
      (op === '=' || op === '<=' || op === '>=') &&
      isObject(lexpr) &&
      isObject(lexpr.ColumnRef) &&
      JSON.stringify(stripLocations(lexpr)) === JSON.stringify(stripLocations(rexpr))
    ) {
      return true;
    }
    const l = fold(lexpr, state, depth + 1);
    const r = fold(rexpr, state, depth + 1);
    if (l === undefined || r === undefined || l === null || r === null) return undefined;
    state.valueDependent = true;
    const a = typeof l === 'string' && typeof r === 'number' ? Number(l) : l;
    const b = typeof r === 'string' && typeof l === 'number' ? Number(r) : r;
    switch (op) {
      case '=':
        return a === b;
      case '<>':
      case '!=':
        return a !== b;
      case '<':
        return a < b;
      case '>':
        return a > b;
      case '<=':
        return a <= b;
      case '>=':
        return a >= b;
    }
  }
  return undefined;
}

function stripLocations(node: unknown): unknown {
  if (Array.isArray(node)) return node.map(stripLocations);
  if (!isObject(node)) return node;
  const out: Node = {};
  for (const [k, v] of Object.entries(node)) if (k !== 'location') out[k] = stripLocations(v);
  return out;
}
