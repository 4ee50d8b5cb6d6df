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

export interface SqlClassification {
  classes: SqlClass[];
  /** Parse-tree node names of every statement found (top level and nested), first-seen order. */
  statementTypes: string[];
  /** Why the input is unparseable. */
  parseError?: string;
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
}

function isObject(value: unknown): value is Node {
  return typeof value === 'object' && value !== null;
}

function add(c: Collector, cls: SqlClass): void {
  c.classes.add(cls);
  if (WRITING_CLASSES.has(cls)) c.classes.add('write');
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
        const name = lastName(value.funcname);
        if (name && SIDE_EFFECT_FUNCTIONS.has(name.toLowerCase())) add(c, 'write');
      }
      stack.push({ node: value, inert: childInert });
    }
  }
}

function classifyNode(type: string, node: Node, text: string, c: Collector, depth: number): void {
  if (!NOT_DDL.has(type)) add(c, 'ddl');
  if (ALWAYS_WRITE.has(type)) add(c, 'write');
  if (DROPPING.has(type)) add(c, 'drop');
  switch (type) {
    case 'DeleteStmt':
      add(c, 'write');
      if (!node.whereClause) add(c, 'deleteWithoutWhere');
      break;
    case 'UpdateStmt':
      add(c, 'write');
      if (!node.whereClause) add(c, 'updateWithoutWhere');
      break;
    case 'SelectStmt':
      if (node.intoClause) add(c, 'ddl');
      break;
    case 'TruncateStmt':
      add(c, 'truncate');
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
    add(c, 'ddl');
  }
}

function classifyPlpgsql(text: string, c: Collector, depth: number): void {
  if (depth > MAX_NESTING) {
    add(c, 'ddl');
    return;
  }
  let tree: unknown;
  try {
    tree = parsePlPgSQLSync(text);
  } catch {
    add(c, 'ddl');
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
    add(c, 'ddl');
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
    add(c, 'ddl');
    return;
  }
  let stmts: ReturnType<typeof splitStatements>;
  try {
    stmts = splitStatements(sql);
  } catch {
    add(c, 'ddl');
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
  const c: Collector = { classes: new Set(), types: [], seenTypes: new Set() };
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
  return { classes: ORDER.filter((cls) => c.classes.has(cls)), statementTypes: c.types };
}

// The order of the CRD's enum: most specific first, as recorded and shown.
const ORDER: readonly SqlClass[] = sqlClassSchema.options;
