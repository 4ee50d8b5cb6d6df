// jsonEqual and jsonPatchOf against the libraries they replace on the admission path
// (isDeepStrictEqual, fast-json-patch compare): the same answers on random JSON documents and on
// random edits of the golden pods.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isDeepStrictEqual } from 'node:util';
import type { V1Pod } from '@kubernetes/client-node';
import fastJsonPatch from 'fast-json-patch';
import { type Seeded, withSeed } from '../test/testing/random.ts';
import { stripInjection } from './inject.ts';
import { jsonEqual, jsonPatchOf } from './json.ts';
import { readYaml } from './testing/fixtures.ts';

const KEYS = ['a', 'b', 'c', 'x/y', 'm~n', '0', '1', '__proto__', 'constructor'];

function randomValue(rng: Seeded, depth: number): unknown {
  const kind = rng.int(0, depth > 3 ? 5 : 8);
  switch (kind) {
    case 0:
      return null;
    case 1:
      return rng.int(0, 3) === 0 ? -0 : rng.int(-2, 3);
    case 2:
      return ['', 'a', 'b', '0'][rng.int(0, 4)];
    case 3:
      return rng.int(0, 2) === 1;
    case 4:
      return 1.5;
    case 5:
    case 6: {
      const out: Record<string, unknown> = {};
      for (let i = rng.int(0, 4); i > 0; i--) {
        const key = KEYS[rng.int(0, KEYS.length)]!;
        Object.defineProperty(out, key, {
          value: randomValue(rng, depth + 1),
          enumerable: true,
          writable: true,
          configurable: true,
        });
      }
      return out;
    }
    default:
      return Array.from({ length: rng.int(0, 4) }, () => randomValue(rng, depth + 1));
  }
}

/** A copy of `value` with a few random edits: values replaced, keys and items added or removed. */
function edit(rng: Seeded, value: unknown): unknown {
  const copy = structuredClone(value);
  const containers: Array<Record<string, unknown> | unknown[]> = [];
  const walk = (v: unknown) => {
    if (v === null || typeof v !== 'object') return;
    containers.push(v as Record<string, unknown>);
    for (const child of Object.values(v)) walk(child);
  };
  walk(copy);
  for (let n = rng.int(0, 4); n > 0 && containers.length > 0; n--) {
    const target = containers[rng.int(0, containers.length)]!;
    if (Array.isArray(target)) {
      const op = rng.int(0, 3);
      if (op === 0) target.push(randomValue(rng, 2));
      else if (op === 1 && target.length > 0) target.splice(rng.int(0, target.length), 1);
      else if (target.length > 0) target[rng.int(0, target.length)] = randomValue(rng, 2);
    } else {
      const keys = Object.keys(target);
      const op = rng.int(0, 3);
      if (op === 0 && keys.length > 0) delete target[keys[rng.int(0, keys.length)]!];
      else
        Object.defineProperty(
          target,
          keys.length > 0 && op === 1 ? keys[0]! : KEYS[rng.int(0, KEYS.length)]!,
          {
            value: randomValue(rng, 2),
            enumerable: true,
            writable: true,
            configurable: true,
          },
        );
    }
  }
  return copy;
}

function assertSame(before: unknown, after: unknown): void {
  assert.equal(jsonEqual(before, after), isDeepStrictEqual(before, after), JSON.stringify({ before, after }));
  if (before === null || typeof before !== 'object' || after === null || typeof after !== 'object') return;
  if (Array.isArray(before) !== Array.isArray(after)) return;
  const expected = fastJsonPatch.compare(before, after);
  const actual = jsonPatchOf(before, after);
  assert.equal(JSON.stringify(actual), JSON.stringify(expected));
}

describe('jsonEqual and jsonPatchOf', () => {
  it('agree with isDeepStrictEqual and fast-json-patch compare on random documents', async () => {
    await withSeed((rng) => {
      for (let i = 0; i < 3000; i++) {
        const before = randomValue(rng, 0);
        assertSame(before, edit(rng, before));
        assertSame(before, structuredClone(before));
        assertSame(before, randomValue(rng, 0));
      }
    });
  });

  it('agree on random edits of the golden pods', async () => {
    const pods = await Promise.all(
      ['plain', 'existing-init', 'job-template', 'already-injected'].flatMap((name) => [
        readYaml<V1Pod>(`pods/${name}.in.yaml`),
        readYaml<V1Pod>(`pods/${name}.out.yaml`).catch(() => undefined),
      ]),
    );
    const all = pods.filter((p): p is V1Pod => p !== undefined);
    await withSeed((rng) => {
      for (const pod of all) {
        assertSame(pod, stripInjection(pod));
        for (const other of all) assertSame(pod, other);
        for (let i = 0; i < 200; i++) assertSame(pod, edit(rng, pod));
      }
    });
  });

  it('tells 0 from -0 and a missing key from an undefined one, as isDeepStrictEqual does', () => {
    assert.equal(jsonEqual({ a: 0 }, { a: -0 }), false);
    assert.equal(jsonEqual({ a: undefined }, {}), false);
    assert.equal(jsonEqual([1, 2], { 0: 1, 1: 2 }), false);
    assert.equal(jsonEqual(JSON.parse('{"__proto__":{"a":1}}'), JSON.parse('{"__proto__":{"a":2}}')), false);
    assert.equal(jsonEqual(JSON.parse('{"__proto__":{"a":1}}'), JSON.parse('{"__proto__":{"a":1}}')), true);
  });
});
