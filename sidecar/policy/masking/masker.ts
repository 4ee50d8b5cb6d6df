// Masks DataRow cells before the agent sees them. One RowMasker per RowDescription: the plan of
// each column (masked by name, scanned by detectors, or left alone) is decided once, so the per-row
// work is the detectors' byte scans and nothing is allocated for a row without a match.
//
// Which cells can be masked:
// - text format: every type. Detectors skip types whose text cannot hold a detected value (numbers
//   that fit 10 digits, dates, booleans, uuids, bytea's hex, ...).
// - binary format: the text-like types, whose binary form is their text: text, varchar, bpchar,
//   name, json, jsonb (after its version byte), xml, unknown. Detectors leave other binary cells
//   as they are (their bytes are not text; a card number stored as a binary int8 is not found).
//   A column masked BY NAME in a binary non-text format becomes NULL instead: the policy said the
//   agent must not see that column, and no text replacement would be a valid value of its type.
// - json/jsonb: a whole masked value becomes a JSON string ("****"); a span outside a JSON string
//   (a card number written as a JSON number) is replaced by a quoted string, so the document stays
//   valid JSON.

import { RE2JS } from 're2js';
import type { Masking } from '../../../crds/index.ts';
import {
  creditCardDetector,
  customDetector,
  type Detector,
  emailDetector,
  ibanDetector,
  nationalIdDetector,
} from './detectors.ts';
import { createStrategies, type MaskStrategy, type Strategies } from './strategies.ts';

export interface ColumnInfo {
  name: string;
  dataTypeID: number;
  format: 'text' | 'binary';
}

export interface MaskResult {
  /** The input array itself when nothing was masked; otherwise a copy with new Buffers. */
  values: (Buffer | null)[];
  maskedCells: number;
}

export interface RowMasker {
  maskRow(values: (Buffer | null)[]): MaskResult;
  /** false: no rule can apply to these columns; the caller may skip maskRow. */
  readonly active: boolean;
  /** Index -> why each masked column is masked (for the recording: which rule touched what). */
  readonly plans: readonly (ColumnPlanSummary | null)[];
}

export interface ColumnPlanSummary {
  column: string;
  byName?: { pattern: string; strategy: MaskStrategy };
  detectors: Detector['type'][];
}

export interface Masker {
  forColumns(columns: readonly ColumnInfo[]): RowMasker;
}

export interface MaskerOptions {
  /** HMAC key of the hash strategy; random per process when absent. */
  hashKey?: Uint8Array;
}

/** PostgreSQL type OIDs (pg_type.h). */
export const PG_TYPE = {
  bool: 16,
  bytea: 17,
  char: 18,
  name: 19,
  int8: 20,
  int2: 21,
  int4: 23,
  text: 25,
  oid: 26,
  tid: 27,
  xid: 28,
  cid: 29,
  json: 114,
  xml: 142,
  cidr: 650,
  float4: 700,
  float8: 701,
  unknown: 705,
  money: 790,
  macaddr: 829,
  inet: 869,
  bpchar: 1042,
  varchar: 1043,
  date: 1082,
  time: 1083,
  timestamp: 1114,
  timestamptz: 1184,
  interval: 1186,
  timetz: 1266,
  bit: 1560,
  varbit: 1562,
  numeric: 1700,
  uuid: 2950,
  pgLsn: 3220,
  jsonb: 3802,
} as const;

const BINARY_TEXT_LIKE: ReadonlySet<number> = new Set([
  PG_TYPE.text,
  PG_TYPE.varchar,
  PG_TYPE.bpchar,
  PG_TYPE.name,
  PG_TYPE.json,
  PG_TYPE.jsonb,
  PG_TYPE.xml,
  PG_TYPE.unknown,
]);

/** Types whose text form cannot contain a card, email, IBAN or SSN (nor free text for custom patterns). */
const NEVER_SCANNED: ReadonlySet<number> = new Set([
  PG_TYPE.bool,
  PG_TYPE.bytea,
  PG_TYPE.char,
  PG_TYPE.int2,
  PG_TYPE.int4,
  PG_TYPE.oid,
  PG_TYPE.tid,
  PG_TYPE.xid,
  PG_TYPE.cid,
  PG_TYPE.cidr,
  PG_TYPE.float4,
  PG_TYPE.float8,
  PG_TYPE.money,
  PG_TYPE.macaddr,
  PG_TYPE.inet,
  PG_TYPE.date,
  PG_TYPE.time,
  PG_TYPE.timestamp,
  PG_TYPE.timestamptz,
  PG_TYPE.interval,
  PG_TYPE.timetz,
  PG_TYPE.bit,
  PG_TYPE.varbit,
  PG_TYPE.uuid,
  PG_TYPE.pgLsn,
]);

const JSON_TYPES: ReadonlySet<number> = new Set([PG_TYPE.json, PG_TYPE.jsonb]);

interface ColumnPlan {
  summary: ColumnPlanSummary;
  /** Masked by name: the whole value is replaced (or nulled for binary non-text cells). */
  whole?: MaskStrategy;
  nullInstead: boolean;
  detectors: { detector: Detector; strategy: MaskStrategy }[];
  json: boolean;
  /** Bytes to leave untouched at the start (jsonb binary version byte). */
  skip: number;
}

interface CompiledDetector {
  detector: Detector;
  strategy: MaskStrategy;
}

function buildDetector(d: Masking['detectors'][number]): Detector {
  switch (d.type) {
    case 'creditCard':
      return creditCardDetector();
    case 'email':
      return emailDetector();
    case 'iban':
      return ibanDetector();
    case 'nationalId':
      return nationalIdDetector();
    case 'custom':
      if (d.pattern === undefined) throw new Error('masking detector of type custom needs a pattern');
      return customDetector(d.pattern);
  }
}

// Spans found in one cell (reused: masking is synchronous).
const spanStart: number[] = [];
const spanEnd: number[] = [];
const spanStrategy: MaskStrategy[] = [];

export function createMasker(masking: Masking, options: MaskerOptions = {}): Masker {
  const strategies = createStrategies(options.hashKey);
  const columnRules = masking.columns.map((c) => ({
    source: c.pattern,
    re: RE2JS.compile(c.pattern),
    strategy: c.strategy,
  }));
  const detectors: CompiledDetector[] = masking.detectors.map((d) => ({
    detector: buildDetector(d),
    strategy: d.strategy,
  }));

  function planFor(column: ColumnInfo): ColumnPlan | null {
    const binary = column.format === 'binary';
    const textLike = !binary || BINARY_TEXT_LIKE.has(column.dataTypeID);
    const json = JSON_TYPES.has(column.dataTypeID);
    const skip = binary && column.dataTypeID === PG_TYPE.jsonb ? 1 : 0;
    const byName = columnRules.find((r) => r.re.test(column.name));
    if (byName) {
      return {
        summary: {
          column: column.name,
          byName: { pattern: byName.source, strategy: byName.strategy },
          detectors: [],
        },
        whole: byName.strategy,
        nullInstead: !textLike,
        detectors: [],
        json,
        skip,
      };
    }
    if (!textLike || detectors.length === 0 || NEVER_SCANNED.has(column.dataTypeID)) return null;
    return {
      summary: { column: column.name, detectors: detectors.map((d) => d.detector.type) },
      nullInstead: false,
      detectors,
      json,
      skip,
    };
  }

  return {
    forColumns(columns) {
      const plans = columns.map(planFor);
      const active = plans.some((p) => p !== null);
      return {
        active,
        plans: plans.map((p) => p?.summary ?? null),
        maskRow(values) {
          if (!active) return { values, maskedCells: 0 };
          let out: (Buffer | null)[] | undefined;
          let masked = 0;
          const n = Math.min(values.length, plans.length);
          for (let i = 0; i < n; i++) {
            const plan = plans[i];
            const value = values[i];
            if (!plan || value === null || value === undefined) continue;
            const replacement = maskCell(plan, value, strategies);
            if (replacement === undefined) continue;
            out ??= values.slice();
            out[i] = replacement;
            masked++;
          }
          return { values: out ?? values, maskedCells: masked };
        },
      };
    },
  };
}

/** The masked cell, or undefined when nothing in it is sensitive. */
function maskCell(plan: ColumnPlan, value: Buffer, strategies: Strategies): Buffer | null | undefined {
  if (plan.whole !== undefined) {
    if (plan.nullInstead) return null;
    const body = value.subarray(plan.skip);
    const masked = strategies.apply(plan.whole, body);
    const text = plan.json ? jsonString(masked) : masked;
    return plan.skip > 0 ? Buffer.concat([value.subarray(0, plan.skip), text]) : Buffer.from(text);
  }
  const body = plan.skip > 0 ? value.subarray(plan.skip) : value;
  let count = 0;
  for (const { detector, strategy } of plan.detectors) {
    detector.scan(body, (start, end) => {
      spanStart[count] = start;
      spanEnd[count] = end;
      spanStrategy[count] = strategy;
      count++;
    });
  }
  if (count === 0) return undefined;
  count = sortAndMerge(count);
  const pieces: Uint8Array[] = [];
  if (plan.skip > 0) pieces.push(value.subarray(0, plan.skip));
  let pos = 0;
  for (let k = 0; k < count; k++) {
    const start = spanStart[k]!;
    const end = spanEnd[k]!;
    pieces.push(body.subarray(pos, start));
    const masked = strategies.apply(spanStrategy[k]!, body.subarray(start, end));
    pieces.push(plan.json && !insideJsonString(body, start) ? jsonString(masked) : masked);
    pos = end;
  }
  pieces.push(body.subarray(pos));
  return Buffer.concat(pieces);
}

/** Orders spans by start (detectors listed first win ties) and unites overlapping ones. */
function sortAndMerge(count: number): number {
  if (count > 16) sortMany(count);
  // Insertion sort: a cell usually holds a handful of spans.
  for (let i = 1; i < count; i++) {
    const s = spanStart[i]!;
    const e = spanEnd[i]!;
    const st = spanStrategy[i]!;
    let j = i - 1;
    while (j >= 0 && spanStart[j]! > s) {
      spanStart[j + 1] = spanStart[j]!;
      spanEnd[j + 1] = spanEnd[j]!;
      spanStrategy[j + 1] = spanStrategy[j]!;
      j--;
    }
    spanStart[j + 1] = s;
    spanEnd[j + 1] = e;
    spanStrategy[j + 1] = st;
  }
  let merged = 0;
  for (let i = 0; i < count; i++) {
    if (merged > 0 && spanStart[i]! < spanEnd[merged - 1]!) {
      spanEnd[merged - 1] = Math.max(spanEnd[merged - 1]!, spanEnd[i]!);
      continue;
    }
    spanStart[merged] = spanStart[i]!;
    spanEnd[merged] = spanEnd[i]!;
    spanStrategy[merged] = spanStrategy[i]!;
    merged++;
  }
  return merged;
}

function sortMany(count: number): void {
  const order = Array.from({ length: count }, (_, i) => i);
  order.sort((a, b) => spanStart[a]! - spanStart[b]! || a - b);
  const starts = order.map((i) => spanStart[i]!);
  const ends = order.map((i) => spanEnd[i]!);
  const strategies = order.map((i) => spanStrategy[i]!);
  for (let i = 0; i < count; i++) {
    spanStart[i] = starts[i]!;
    spanEnd[i] = ends[i]!;
    spanStrategy[i] = strategies[i]!;
  }
}

/** Masked output is ASCII without quotes or backslashes, so quoting it is enough. */
function jsonString(masked: Uint8Array): Buffer {
  return Buffer.concat([QUOTE, masked, QUOTE]);
}
const QUOTE = Buffer.from('"');

function insideJsonString(json: Uint8Array, offset: number): boolean {
  let inside = false;
  for (let i = 0; i < offset; i++) {
    const b = json[i];
    if (b === 0x5c && inside) i++;
    else if (b === 0x22) inside = !inside;
  }
  return inside;
}
