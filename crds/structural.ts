// Converts the JSON Schema zod emits (draft 2020-12) into a Kubernetes structural OpenAPI v3 schema:
// every node has a type, no $ref/$defs, no unions where the apiserver wants structure,
// additionalProperties only for maps, draft-4 style exclusive bounds. Anything this converter does
// not know is an error, so a new zod construct cannot silently produce a schema the apiserver
// would read differently from zod.

export type JsonSchema = { [key: string]: unknown };

/** Keys copied as they are (value validations and Kubernetes extensions). */
const PASSTHROUGH = new Set([
  'description',
  'title',
  'default',
  'enum',
  'format',
  'pattern',
  'minLength',
  'maxLength',
  'minimum',
  'maximum',
  'minItems',
  'maxItems',
  'multipleOf',
  'minProperties',
  'maxProperties',
  'x-kubernetes-validations',
  'x-kubernetes-list-type',
  'x-kubernetes-list-map-keys',
  'x-kubernetes-map-type',
  'x-kubernetes-preserve-unknown-fields',
  'x-kubernetes-int-or-string',
  'x-kubernetes-embedded-resource',
]);

/** Keys dropped on purpose: meaningless or implied for Kubernetes. */
const DROPPED = new Set(['$schema', '$id', 'id', 'propertyNames']);

export class StructuralSchemaError extends Error {
  override name = 'StructuralSchemaError';
}

export function toStructuralSchema(root: JsonSchema): JsonSchema {
  const defs = { ...(root.$defs as Record<string, JsonSchema> | undefined) };
  return convert(root, defs, '');
}

function resolve(node: JsonSchema, defs: Record<string, JsonSchema>, path: string): JsonSchema {
  const ref = node.$ref;
  if (typeof ref !== 'string') return node;
  const name = /^#\/\$defs\/(.+)$/.exec(ref)?.[1];
  const target = name ? defs[name] : undefined;
  if (!target) throw new StructuralSchemaError(`${path || '/'}: cannot resolve $ref ${ref}`);
  const { $ref: _ref, ...rest } = node;
  return { ...resolve(target, defs, path), ...rest };
}

function convert(input: JsonSchema, defs: Record<string, JsonSchema>, path: string): JsonSchema {
  let node = resolve(input, defs, path);
  node = collapseUnion(node, defs, path);
  const out: JsonSchema = {};
  let type = node.type;
  if (Array.isArray(type)) {
    const nonNull = type.filter((t) => t !== 'null');
    if (nonNull.length !== 1)
      throw new StructuralSchemaError(`${path || '/'}: unsupported type list ${type}`);
    if (nonNull.length !== type.length) out.nullable = true;
    type = nonNull[0];
  }
  if ('const' in node) {
    out.enum = [node.const];
    type ??= jsonType(node.const);
  }
  for (const [key, value] of Object.entries(node)) {
    if (PASSTHROUGH.has(key)) out[key] = value;
    else if (DROPPED.has(key)) continue;
    else if (
      !['type', 'const', 'properties', 'required', 'items', 'additionalProperties', '$defs'].includes(key)
    ) {
      if (key === 'exclusiveMinimum' || key === 'exclusiveMaximum') continue;
      throw new StructuralSchemaError(`${path || '/'}: unsupported JSON Schema keyword "${key}"`);
    }
  }
  if (typeof node.exclusiveMinimum === 'number') {
    out.minimum = node.exclusiveMinimum;
    out.exclusiveMinimum = true;
  }
  if (typeof node.exclusiveMaximum === 'number') {
    out.maximum = node.exclusiveMaximum;
    out.exclusiveMaximum = true;
  }
  // zod bounds .int() by the safe integer range: noise in a CRD, the apiserver uses int64.
  if (out.minimum === Number.MIN_SAFE_INTEGER) delete out.minimum;
  if (out.maximum === Number.MAX_SAFE_INTEGER) delete out.maximum;

  if (type === undefined) {
    if (node.properties) type = 'object';
    else if (node.items) type = 'array';
  }
  if (type === undefined) {
    // z.unknown()/z.any(): keep whatever the client sends.
    out['x-kubernetes-preserve-unknown-fields'] = true;
    return order(out);
  }
  out.type = type;
  if (type === 'object') {
    const properties = node.properties as Record<string, JsonSchema> | undefined;
    const additional = node.additionalProperties;
    if (properties && Object.keys(properties).length > 0) {
      out.properties = Object.fromEntries(
        Object.entries(properties).map(([name, child]) => [name, convert(child, defs, `${path}/${name}`)]),
      );
      if (Array.isArray(node.required) && node.required.length > 0) out.required = node.required;
    } else if (additional && typeof additional === 'object') {
      out.additionalProperties = convert(additional as JsonSchema, defs, `${path}/*`);
    } else if (!out['x-kubernetes-preserve-unknown-fields']) {
      out['x-kubernetes-preserve-unknown-fields'] = true;
    }
  } else if (type === 'array') {
    const items = node.items;
    if (!items || typeof items !== 'object' || Array.isArray(items)) {
      throw new StructuralSchemaError(`${path || '/'}: arrays need a single items schema`);
    }
    out.items = convert(items as JsonSchema, defs, `${path}[]`);
  }
  return order(out);
}

/**
 * anyOf/oneOf as zod emits them for .nullable(), .or() and optional-with-null: a null branch becomes
 * nullable; branches of the same scalar type merge into one node with the loosest bounds.
 */
function collapseUnion(node: JsonSchema, defs: Record<string, JsonSchema>, path: string): JsonSchema {
  const branches = (node.anyOf ?? node.oneOf) as JsonSchema[] | undefined;
  if (!branches) return node;
  const { anyOf: _a, oneOf: _o, ...rest } = node;
  const resolved = branches.map((b) => collapseUnion(resolve(b, defs, path), defs, path));
  const nonNull = resolved.filter((b) => b.type !== 'null');
  const nullable = nonNull.length !== resolved.length;
  let merged: JsonSchema;
  if (nonNull.length === 1) {
    merged = nonNull[0]!;
  } else {
    const types = new Set(nonNull.map((b) => b.type));
    const [only] = types;
    if (types.size !== 1 || typeof only !== 'string' || only === 'object' || only === 'array') {
      throw new StructuralSchemaError(
        `${path || '/'}: a union of ${[...types].join(', ')} cannot be a structural schema; use one type`,
      );
    }
    merged = mergeScalarBranches(only, nonNull);
  }
  const result: JsonSchema = { ...merged, ...rest };
  if (nullable) result.type = [merged.type, 'null'];
  return result;
}

function mergeScalarBranches(type: string, branches: JsonSchema[]): JsonSchema {
  const merged: JsonSchema = { type };
  const all = <K extends string>(key: K) => branches.every((b) => b[key] !== undefined);
  const numbers = (key: string) => branches.map((b) => b[key] as number);
  if (all('minLength')) merged.minLength = Math.min(...numbers('minLength'));
  if (all('maxLength')) merged.maxLength = Math.max(...numbers('maxLength'));
  if (all('minimum')) merged.minimum = Math.min(...numbers('minimum'));
  if (all('maximum')) merged.maximum = Math.max(...numbers('maximum'));
  if (all('enum')) merged.enum = [...new Set(branches.flatMap((b) => b.enum as unknown[]))];
  const patterns = new Set(branches.map((b) => b.pattern));
  if (patterns.size === 1 && all('pattern')) merged.pattern = branches[0]!.pattern;
  const formats = new Set(branches.map((b) => b.format));
  if (formats.size === 1 && all('format')) merged.format = branches[0]!.format;
  return merged;
}

function jsonType(value: unknown): string {
  if (typeof value === 'number') return Number.isInteger(value) ? 'integer' : 'number';
  return typeof value;
}

/** A stable key order keeps the generated YAML readable and diffs small. */
const KEY_ORDER = ['description', 'type', 'nullable', 'format', 'enum', 'default'];
function order(node: JsonSchema): JsonSchema {
  const rank = (k: string) => {
    const i = KEY_ORDER.indexOf(k);
    return i === -1 ? KEY_ORDER.length : i;
  };
  return Object.fromEntries(Object.entries(node).sort(([a], [b]) => rank(a) - rank(b)));
}
