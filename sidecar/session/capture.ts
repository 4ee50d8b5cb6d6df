// Result capture, the same for every protocol: a bounded sample of what the agent got back (masked as
// it saw it; unmasked originals only when the policy keeps them), masked-cell counts, and the result
// and policy.masked events. Plain objects and functions: the gateways call this per row.
import type { TargetMetrics } from '../server/metrics.ts';
import type { RowMasker } from '../server/modules.ts';
import type { RecordingChannel } from './recording-channel.ts';

export interface ResultCapture {
  startNs: bigint;
  rows: number;
  sample: unknown[][];
  /** With masking.keepOriginals: the sampled rows before masking, for rows that had masked cells. */
  originals: { row: number; values: unknown[] }[] | undefined;
  sampleBytes: number;
  maskedCells: number;
  rowMasker: RowMasker | undefined;
}

export interface SampleLimits {
  sampleRows: number;
  sampleBytes: number;
}

/** Every cell NULL: what the agent gets when masking is on and the result's columns are unknown. */
export const MASK_EVERYTHING: RowMasker = {
  active: true,
  plans: [],
  maskRow(values) {
    let maskedCells = 0;
    const out = values.map((v) => {
      if (v !== null) maskedCells++;
      return null;
    });
    return { values: out, maskedCells };
  },
};

export function nowNs(): bigint {
  return process.hrtime.bigint();
}

/** Fills the capture fields of `into` for a new result (one object shape for every result). */
export function resetCapture(into: ResultCapture): void {
  into.rows = 0;
  into.sample = [];
  into.originals = undefined;
  into.sampleBytes = 0;
  into.maskedCells = 0;
  into.rowMasker = undefined;
  into.startNs = nowNs();
}

export function wantsSample(c: ResultCapture, limits: SampleLimits): boolean {
  return c.sample.length < limits.sampleRows && c.sampleBytes < limits.sampleBytes;
}

/** Adds one sampled row (as the agent saw it), and its original when the policy keeps originals. */
export function addSample(
  c: ResultCapture,
  cells: unknown[],
  bytes: number,
  original?: unknown[],
  originalBytes = 0,
): void {
  c.sampleBytes += bytes;
  c.sample.push(cells);
  if (original) {
    c.sampleBytes += originalBytes;
    c.originals ??= [];
    c.originals.push({ row: c.sample.length - 1, values: original });
  }
}

export interface ResultEvent {
  kind: string;
  /** Protocol fields first (e.g. commandTag, rows). */
  payload: Record<string, unknown>;
  /** Column (field) names of the result, if known. */
  columns: string[] | undefined;
  /** Fields naming the command in policy.masked (e.g. { sql }). */
  named: Record<string, unknown>;
}

/** Records the result and, when cells were masked, policy.masked; then resets the capture. */
export function recordResult(
  rec: RecordingChannel,
  metrics: TargetMetrics,
  c: ResultCapture,
  ev: ResultEvent,
): void {
  const payload = ev.payload;
  payload.durationMs = Number(nowNs() - c.startNs) / 1e6;
  payload.maskedCells = c.maskedCells;
  if (ev.columns) payload.columns = ev.columns;
  if (c.sample.length > 0) payload.rowsSample = c.sample;
  // Only when the policy asks (masking.keepOriginals): the recording then holds sensitive data.
  if (c.originals) payload.unmaskedRowsSample = c.originals;
  rec.add(ev.kind, 'server', payload);
  if (c.maskedCells > 0) {
    const plans = c.rowMasker?.plans ?? [];
    const fields = plans.filter((p) => p !== null).map((p) => p.column);
    const rules = new Set<string>();
    for (const p of plans) {
      if (!p) continue;
      if (p.byName) rules.add(`column:${p.byName.pattern}`);
      for (const d of p.detectors) rules.add(`detector:${d}`);
    }
    rec.add('policy.masked', 'internal', {
      rule: [...rules].join(',') || 'masking',
      fields,
      count: c.maskedCells,
      ...ev.named,
      maskedCells: c.maskedCells,
      columns: ev.columns,
    });
    metrics.maskedCells(c.maskedCells);
  }
  resetCapture(c);
}
