// Prometheus text-format histograms for the benchmarks: one histogram summed over the series whose
// labels match, deltas between two scrapes, and histogram_quantile's interpolation.

export interface Histogram {
  /** Cumulative count per upper bound (+Inf included). */
  buckets: Map<number, number>;
  sum: number;
  count: number;
}

function labelsOf(line: string): Record<string, string> {
  const open = line.indexOf('{');
  const close = line.lastIndexOf('}');
  if (open === -1 || close === -1) return {};
  return Object.fromEntries(
    [...line.slice(open + 1, close).matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map((m) => [m[1], m[2]]),
  );
}

/** The series of `metric` whose labels equal `match` (a missing label counts as ""), summed. */
export function parseHistogram(text: string, metric: string, match: Record<string, string>): Histogram {
  const out: Histogram = { buckets: new Map(), sum: 0, count: 0 };
  for (const line of text.split('\n')) {
    if (!line.startsWith(metric)) continue;
    const suffix = line.slice(
      metric.length,
      line.indexOf('{') === -1 ? line.indexOf(' ') : line.indexOf('{'),
    );
    if (suffix !== '_bucket' && suffix !== '_sum' && suffix !== '_count') continue;
    const labels = labelsOf(line);
    if (!Object.entries(match).every(([k, v]) => (labels[k] ?? '') === v)) continue;
    const value = Number(line.slice(line.lastIndexOf(' ') + 1));
    if (suffix === '_sum') out.sum += value;
    else if (suffix === '_count') out.count += value;
    else {
      const le = labels.le === '+Inf' ? Number.POSITIVE_INFINITY : Number(labels.le);
      out.buckets.set(le, (out.buckets.get(le) ?? 0) + value);
    }
  }
  return out;
}

export function histogramDelta(after: Histogram, before: Histogram): Histogram {
  return {
    buckets: new Map([...after.buckets].map(([le, n]) => [le, n - (before.buckets.get(le) ?? 0)])),
    sum: after.sum - before.sum,
    count: after.count - before.count,
  };
}

/** histogram_quantile: linear interpolation inside the bucket holding the q-th observation. */
export function quantile(q: number, h: Histogram): number {
  const sorted = [...h.buckets].sort(([a], [b]) => a - b);
  if (sorted.length === 0) return Number.NaN;
  const total = sorted.at(-1)![1];
  if (total === 0) return Number.NaN;
  const rank = q * total;
  let lower = 0;
  let below = 0;
  for (const [le, count] of sorted) {
    if (count >= rank) {
      if (le === Number.POSITIVE_INFINITY) return lower;
      return lower + ((le - lower) * (rank - below)) / Math.max(count - below, 1);
    }
    lower = le;
    below = count;
  }
  return lower;
}
