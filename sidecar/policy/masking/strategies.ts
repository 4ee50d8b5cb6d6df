// What a masked value becomes. Every strategy returns plain ASCII, so the result is valid in any
// client encoding and in every text-like column.
import { createHmac, randomBytes } from 'node:crypto';

export type MaskStrategy = 'redact' | 'partial' | 'hash';

export interface Strategies {
  apply(strategy: MaskStrategy, original: Uint8Array): Buffer;
}

const REDACTED = Buffer.from('****');
const LETTER_OR_DIGIT = /[\p{L}\p{N}]/u;

/**
 * partial keeps the last 4 letters or digits and every separator (so "4111 1111 1111 1234" becomes
 * "**** **** **** 1234"); values with fewer than 8 letters and digits are fully redacted, since
 * showing 4 of them would show most of the value.
 */
function partial(original: Uint8Array): Buffer {
  const chars = Array.from(
    Buffer.from(original.buffer, original.byteOffset, original.byteLength).toString('utf8'),
  );
  let alnum = 0;
  for (const ch of chars) if (LETTER_OR_DIGIT.test(ch)) alnum++;
  if (alnum < 8) return REDACTED;
  let kept = 0;
  for (let i = chars.length - 1; i >= 0; i--) {
    const ch = chars[i]!;
    if (!LETTER_OR_DIGIT.test(ch)) {
      if (ch.charCodeAt(0) > 0x7e || ch.charCodeAt(0) < 0x20) chars[i] = '*';
      continue;
    }
    if (kept < 4 && ch.charCodeAt(0) <= 0x7e) kept++;
    else chars[i] = '*';
  }
  return Buffer.from(chars.join(''), 'utf8');
}

/**
 * hash is a keyed HMAC-SHA-256 prefix ("#" + 16 hex digits): equal values mask equally, so joins and
 * GROUP BY still work for the agent, but without the key a dictionary of likely values cannot be
 * tried against it. The key is random per process unless the caller provides one.
 */
export function createStrategies(hashKey?: Uint8Array): Strategies {
  const key = hashKey ?? randomBytes(32);
  return {
    apply(strategy, original) {
      switch (strategy) {
        case 'redact':
          return REDACTED;
        case 'partial':
          return partial(original);
        case 'hash':
          return Buffer.from(`#${createHmac('sha256', key).update(original).digest('hex').slice(0, 16)}`);
      }
    },
  };
}
