// cloneJson must be a deep, independent copy that equals what structuredClone gives for JSON values.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { cloneJson } from './clone.ts';

test('cloneJson copies JSON values deeply and equals structuredClone', () => {
  const value = {
    a: 1,
    b: 'x',
    c: null,
    d: [1, { e: [true, false], f: undefined }],
    g: { h: { i: 'deep' } },
    'weird key': '',
  };
  const copy = cloneJson(value);
  assert.deepStrictEqual(copy, structuredClone(value));
  assert.ok(Object.hasOwn(copy.d[1] as object, 'f'), 'keys holding undefined are kept');
  (copy.g.h as { i: string }).i = 'changed';
  (copy.d as unknown[]).push(2);
  assert.equal(value.g.h.i, 'deep');
  assert.equal(value.d.length, 2);
  assert.equal(cloneJson('s'), 's');
  assert.equal(cloneJson(null), null);
});

test('cloneJson does not copy inherited properties, nor let __proto__ keys change the prototype', () => {
  const parsed = JSON.parse('{"__proto__": {"polluted": true}, "x": 1}') as Record<string, unknown>;
  const copy = cloneJson(parsed);
  assert.equal(({} as Record<string, unknown>).polluted, undefined);
  assert.equal(Object.getPrototypeOf(copy), Object.prototype);
  assert.equal(copy.x, 1);
  assert.deepStrictEqual(Object.getOwnPropertyDescriptor(copy, '__proto__')?.value, { polluted: true });
});
