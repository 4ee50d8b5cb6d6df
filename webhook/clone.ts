// Copies of JSON-shaped values (admission objects, rendered containers), and freezing of the ones
// shared between admissions (resolved policies, cached renderings). A copy is a plain recursive copy of
// arrays and objects, several times cheaper than structuredClone's serialize/deserialize round
// trip, which was the largest single cost of an admission. Everything here came from JSON.parse or
// from object literals, so there are no cycles, Dates, Maps or class instances to keep.

/** Freezes a JSON-shaped value and everything in it (an already frozen object is taken as done). */
export function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value)) deepFreeze(v);
  }
  return value;
}

export function cloneJson<T>(value: T): T {
  if (value === null || typeof value !== 'object') return value;
  if (Array.isArray(value)) {
    const out = new Array(value.length);
    for (let i = 0; i < value.length; i++) out[i] = cloneJson(value[i]);
    return out as T;
  }
  const out: Record<string, unknown> = {};
  for (const key in value) {
    if (!Object.hasOwn(value, key)) continue;
    const item = cloneJson((value as Record<string, unknown>)[key]);
    // An own "__proto__" key (JSON.parse makes one) stays a key; assigning it would set the prototype.
    if (key === '__proto__')
      Object.defineProperty(out, key, { value: item, enumerable: true, writable: true, configurable: true });
    else out[key] = item;
  }
  return out as T;
}
