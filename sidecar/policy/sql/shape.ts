// The "shape" of a statement: its text with small integer literals replaced by 0, so that
// `SELECT ... WHERE id = 17` and `... WHERE id = 42` share one classification and the parser runs
// once per shape instead of once per statement (agents and pgbench inline their values).
//
// Sound by construction, not by heuristics about what a policy cares about:
// - Only texts without quotes, dollar signs, backslashes and comments get a shape: a number inside a
//   string (a DO body, an EXECUTE literal, a U&'' escape) can change what the text means.
// - Only integer tokens of 1 to 9 digits are replaced (always an int32 constant for the lexer, never
//   a float), and only when they stand alone: not touching a letter, digit, `_`, `.` or `$` (which
//   would make them part of an identifier, a decimal, an exponent or a parameter).
// - An integer right after `name(` is kept (type modifiers such as `float(0)` are range-checked by
//   the grammar itself), except after VALUES and IN, where it is a plain value.
// - The guard reuses a shape's classification only for plain SELECT/INSERT/UPDATE/DELETE, whose
//   classification never looks at a constant's value (EXPLAIN (ANALYZE 0) does, so it is excluded).

const MAX_INT_DIGITS = 9;

function isWordChar(code: number): boolean {
  return (
    (code >= 48 && code <= 57) || // 0-9
    (code >= 65 && code <= 90) || // A-Z
    (code >= 97 && code <= 122) || // a-z
    code === 95 || // _
    code === 36 || // $
    code >= 128 // identifiers may hold any non-ASCII letter
  );
}

function isSpace(code: number): boolean {
  return code === 32 || code === 9 || code === 10 || code === 13 || code === 12 || code === 11;
}

/** The word that ends right before `end` (exclusive), lower-cased. */
function wordBefore(sql: string, end: number): string {
  let start = end;
  while (start > 0 && isWordChar(sql.charCodeAt(start - 1))) start--;
  return sql.slice(start, end).toLowerCase();
}

/** Whether the integer at `start` directly follows `name(` (a type modifier or a function argument). */
function followsCallParen(sql: string, start: number): boolean {
  let i = start - 1;
  while (i >= 0 && isSpace(sql.charCodeAt(i))) i--;
  if (i < 0 || sql.charCodeAt(i) !== 40 /* ( */) return false;
  i--;
  while (i >= 0 && isSpace(sql.charCodeAt(i))) i--;
  if (i < 0 || !isWordChar(sql.charCodeAt(i))) return false;
  const word = wordBefore(sql, i + 1);
  return word !== 'values' && word !== 'in';
}

/**
 * The shape of `sql`, or undefined when the text has no replaceable literal or holds anything that
 * makes replacing unsafe (see above).
 */
export function sqlShape(sql: string): string | undefined {
  const n = sql.length;
  let out: string | undefined;
  let copied = 0;
  for (let i = 0; i < n; i++) {
    const code = sql.charCodeAt(i);
    // ' " $ \ NUL: strings, quoted identifiers, dollar quotes and parameters, escapes.
    if (code === 39 || code === 34 || code === 36 || code === 92 || code === 0) return undefined;
    // Comments: -- and /*
    if ((code === 45 && sql.charCodeAt(i + 1) === 45) || (code === 47 && sql.charCodeAt(i + 1) === 42))
      return undefined;
    if (code < 48 || code > 57) continue;
    const start = i;
    while (i + 1 < n && sql.charCodeAt(i + 1) >= 48 && sql.charCodeAt(i + 1) <= 57) i++;
    const end = i + 1;
    const before = start > 0 ? sql.charCodeAt(start - 1) : 32;
    const after = end < n ? sql.charCodeAt(end) : 32;
    if (isWordChar(before) || before === 46 || isWordChar(after) || after === 46) continue;
    if (end - start > MAX_INT_DIGITS) continue;
    if (end - start === 1 && code === 48) continue; // already 0
    if (followsCallParen(sql, start)) continue;
    out = (out ?? '') + sql.slice(copied, start) + '0';
    copied = end;
  }
  return out === undefined ? undefined : out + sql.slice(copied);
}

/** Statement types whose classification does not depend on the value of any integer constant. */
export const SHAPE_SAFE_TYPES: ReadonlySet<string> = new Set([
  'SelectStmt',
  'InsertStmt',
  'UpdateStmt',
  'DeleteStmt',
]);
