import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { z } from 'zod';
import { openApiSchema } from './generate.ts';
import { StructuralSchemaError, toStructuralSchema } from './structural.ts';

describe('toStructuralSchema', () => {
  it('turns a nullable union into nullable and drops the $schema keyword', () => {
    const out = openApiSchema(z.object({ a: z.string().nullable() }));
    assert.equal(out.$schema, undefined);
    assert.deepEqual(out.properties, { a: { type: 'string', nullable: true } });
  });

  it('merges same-type branches with the loosest bounds', () => {
    const out = openApiSchema(z.object({ n: z.string().min(2).max(5).or(z.string().min(1).max(9)) }));
    assert.deepEqual((out.properties as Record<string, unknown>).n, {
      type: 'string',
      minLength: 1,
      maxLength: 9,
    });
  });

  it('refuses unions of different types, naming the path', () => {
    assert.throws(
      () => openApiSchema(z.object({ spec: z.object({ v: z.string().or(z.number()) }) })),
      (e: unknown) => e instanceof StructuralSchemaError && /\/spec\/v/.test(e.message),
    );
  });

  it('keeps additionalProperties for maps only, without propertyNames', () => {
    const out = openApiSchema(z.object({ labels: z.record(z.string(), z.string()) }));
    assert.deepEqual((out.properties as Record<string, unknown>).labels, {
      type: 'object',
      additionalProperties: { type: 'string' },
    });
  });

  it('inlines $ref from $defs', () => {
    const out = toStructuralSchema({
      type: 'object',
      properties: { a: { $ref: '#/$defs/A', description: 'the a' } },
      $defs: { A: { type: 'integer', minimum: 0 } },
    });
    assert.deepEqual(out, {
      type: 'object',
      properties: { a: { description: 'the a', type: 'integer', minimum: 0 } },
    });
  });

  it('converts numeric exclusive bounds to the draft-4 form', () => {
    const out = openApiSchema(z.object({ p: z.number().positive() }));
    assert.deepEqual((out.properties as Record<string, unknown>).p, {
      type: 'number',
      minimum: 0,
      exclusiveMinimum: true,
    });
  });

  it('turns literals into a one-value enum and keeps defaults and descriptions', () => {
    const out = openApiSchema(z.object({ k: z.literal('x').default('x').describe('always x') }));
    assert.deepEqual((out.properties as Record<string, unknown>).k, {
      description: 'always x',
      type: 'string',
      enum: ['x'],
      default: 'x',
    });
  });

  it('refuses JSON Schema keywords it does not know', () => {
    assert.throws(() => toStructuralSchema({ type: 'object', patternProperties: {} }), /patternProperties/);
  });
});
