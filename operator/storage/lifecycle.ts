// Lifecycle rules for recording retention, as a pure merge: the operator owns the rules whose ID
// starts with its prefix and leaves every other rule of the bucket alone.
import type { LifecycleRule } from '@aws-sdk/client-s3';

export const RULE_ID_PREFIX = 'chaperone-retention:';

export interface RetentionRule {
  /** Key prefix ('' = the whole bucket). */
  prefix: string;
  days: number;
}

export function ruleId(prefix: string): string {
  return `${RULE_ID_PREFIX}${prefix === '' ? '*' : prefix}`;
}

/** One rule per prefix; when policies share a prefix the longest retention wins (never expire early). */
export function mergeRetention(rules: readonly RetentionRule[]): RetentionRule[] {
  const byPrefix = new Map<string, number>();
  for (const rule of rules) byPrefix.set(rule.prefix, Math.max(byPrefix.get(rule.prefix) ?? 0, rule.days));
  return [...byPrefix.entries()]
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([prefix, days]) => ({ prefix, days }));
}

export function lifecycleRule(rule: RetentionRule): LifecycleRule {
  return {
    ID: ruleId(rule.prefix),
    Status: 'Enabled',
    Filter: { Prefix: rule.prefix },
    // Current objects get a delete marker after the retention; versions made non-current (by that
    // marker or an overwrite) are removed after the same number of days again, so no version is
    // ever removed before the retention has passed.
    Expiration: { Days: rule.days },
    NoncurrentVersionExpiration: { NoncurrentDays: rule.days },
  };
}

function sameRule(a: LifecycleRule, b: LifecycleRule): boolean {
  return (
    a.ID === b.ID &&
    a.Status === b.Status &&
    (a.Filter?.Prefix ?? a.Prefix ?? '') === (b.Filter?.Prefix ?? b.Prefix ?? '') &&
    a.Expiration?.Days === b.Expiration?.Days &&
    a.NoncurrentVersionExpiration?.NoncurrentDays === b.NoncurrentVersionExpiration?.NoncurrentDays
  );
}

/**
 * The bucket's rules with ours set to `wanted` (added or updated). Rules of ours for prefixes no
 * policy names any more stay: recordings made under them still need to expire. Returns undefined
 * when nothing changes.
 */
export function mergeLifecycle(
  existing: readonly LifecycleRule[],
  wanted: readonly RetentionRule[],
): LifecycleRule[] | undefined {
  const desired = mergeRetention(wanted).map(lifecycleRule);
  const result = [...existing];
  let changed = false;
  for (const rule of desired) {
    const index = result.findIndex((r) => r.ID === rule.ID);
    if (index < 0) {
      result.push(rule);
      changed = true;
    } else if (!sameRule(result[index]!, rule)) {
      result[index] = rule;
      changed = true;
    }
  }
  return changed ? result : undefined;
}
