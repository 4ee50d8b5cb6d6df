// Equality and RFC 6902 differences of JSON-shaped values (admission objects, rendered pods), the two
// comparisons every pod admission makes. Both are what node:util isDeepStrictEqual and
// fast-json-patch's compare compute on such values, minus the generality they pay for per call:
// no prototype, Map, Date or cycle handling in the equality, and no copy of every added value in
// the difference (fast-json-patch deep-copies each one through JSON.stringify + JSON.parse; here
// the operations share the values of `after`, which the caller serializes right away).
import type { Operation } from 'fast-json-patch';

/**
 * Deep equality of values that came from JSON.parse or object literals: same own enumerable keys,
 * same array lengths, primitives equal by Object.is (so 0 and -0 differ, as in isDeepStrictEqual).
 */
export function jsonEqual(a: unknown, b: unknown): boolean {
  if (a === b) return a !== 0 || Object.is(a, b);
  if (a === null || b === null || typeof a !== 'object' || typeof b !== 'object') return Object.is(a, b);
  const array = Array.isArray(a);
  if (array !== Array.isArray(b)) return false;
  if (array) {
    const x = a as unknown[];
    const y = b as unknown[];
    if (x.length !== y.length) return false;
    for (let i = 0; i < x.length; i++) if (!jsonEqual(x[i], y[i])) return false;
    return true;
  }
  if (Object.getPrototypeOf(a) !== Object.getPrototypeOf(b)) return false;
  const x = a as Record<string, unknown>;
  const y = b as Record<string, unknown>;
  // Key counts first: an object missing a field (a default, say) is told apart without descending.
  const keys = Object.keys(x);
  if (keys.length !== Object.keys(y).length) return false;
  for (const key of keys) {
    if (!Object.hasOwn(y, key) || !jsonEqual(x[key], y[key])) return false;
  }
  return true;
}

function escapeKey(key: string): string {
  if (!key.includes('/') && !key.includes('~')) return key;
  return key.replace(/~/g, '~0').replace(/\//g, '~1');
}

function keysOf(value: object): string[] {
  if (!Array.isArray(value)) return Object.keys(value);
  const keys = new Array<string>(value.length);
  for (let i = 0; i < value.length; i++) keys[i] = String(i);
  return keys;
}

/** A value as fast-json-patch's _deepClone would put it into an operation, without the copy. */
function asValue(value: unknown): unknown {
  return value === undefined ? null : value;
}

function generate(
  before: Record<string, unknown>,
  after: Record<string, unknown>,
  ops: Operation[],
  path: string,
): void {
  if (before === after) return;
  if (typeof (after as { toJSON?: unknown }).toJSON === 'function')
    after = (after as unknown as { toJSON(): Record<string, unknown> }).toJSON();
  const newKeys = keysOf(after);
  const oldKeys = keysOf(before);
  let deleted = false;
  const afterIsArray = Array.isArray(after);
  for (let t = oldKeys.length - 1; t >= 0; t--) {
    const key = oldKeys[t]!;
    const oldVal = before[key];
    if (Object.hasOwn(after, key) && !(after[key] === undefined && oldVal !== undefined && !afterIsArray)) {
      const newVal = after[key];
      if (
        typeof oldVal === 'object' &&
        oldVal !== null &&
        typeof newVal === 'object' &&
        newVal !== null &&
        Array.isArray(oldVal) === Array.isArray(newVal)
      ) {
        generate(
          oldVal as Record<string, unknown>,
          newVal as Record<string, unknown>,
          ops,
          `${path}/${escapeKey(key)}`,
        );
      } else if (oldVal !== newVal) {
        ops.push({ op: 'replace', path: `${path}/${escapeKey(key)}`, value: asValue(newVal) });
      }
    } else if (Array.isArray(before) === afterIsArray) {
      ops.push({ op: 'remove', path: `${path}/${escapeKey(key)}` });
      deleted = true;
    } else {
      ops.push({ op: 'replace', path, value: after });
    }
  }
  if (!deleted && newKeys.length === oldKeys.length) return;
  for (const key of newKeys) {
    if (!Object.hasOwn(before, key) && after[key] !== undefined)
      ops.push({ op: 'add', path: `${path}/${escapeKey(key)}`, value: asValue(after[key]) });
  }
}

/**
 * The operations fast-json-patch's compare(before, after) returns, in the same order and with equal
 * values once serialized; the values are `after`'s own (not copies): serialize the operations
 * before changing `after`.
 */
export function jsonPatchOf(before: object, after: object): Operation[] {
  const ops: Operation[] = [];
  generate(before as Record<string, unknown>, after as Record<string, unknown>, ops, '');
  return ops;
}
