// Value detectors: find sensitive spans inside a cell's UTF-8 bytes. Each runs in linear time
// (hand-written scanners or RE2), starts with a cheap pre-check so the common cell costs one pass
// over its bytes and no allocation, and reports byte offsets [start, end).
import { RE2JS } from 're2js';

export type SpanSink = (start: number, end: number) => void;

export interface Detector {
  readonly type: 'creditCard' | 'email' | 'iban' | 'nationalId' | 'custom';
  /** Calls `emit` for each sensitive span of `value`, in increasing order. */
  scan(value: Uint8Array, emit: SpanSink): void;
}

const ZERO = 0x30;
const NINE = 0x39;

function isDigit(b: number | undefined): boolean {
  return b !== undefined && b >= ZERO && b <= NINE;
}
function isUpper(b: number | undefined): boolean {
  return b !== undefined && b >= 0x41 && b <= 0x5a;
}
function isAlnum(b: number | undefined): boolean {
  return b !== undefined && (isDigit(b) || isUpper(b) || (b >= 0x61 && b <= 0x7a));
}

function countDigits(value: Uint8Array, atLeast: number): boolean {
  let n = 0;
  for (let i = 0; i < value.length; i++) {
    const b = value[i]!;
    if (b >= ZERO && b <= NINE && ++n >= atLeast) return true;
  }
  return false;
}

// Scratch space for the digit groups of one run (reused: scanning is synchronous).
const groupStart: number[] = [];
const groupEnd: number[] = [];

function luhnValid(value: Uint8Array, first: number, last: number): boolean {
  let sum = 0;
  let double = false;
  for (let g = last; g >= first; g--) {
    for (let i = groupEnd[g]! - 1; i >= groupStart[g]!; i--) {
      let d = value[i]! - ZERO;
      if (double) {
        d *= 2;
        if (d > 9) d -= 9;
      }
      sum += d;
      double = !double;
    }
  }
  return sum % 10 === 0;
}

/**
 * Payment card numbers: 13 to 19 digits, optionally grouped by single spaces or dashes, passing the
 * Luhn check (so a random digit string is masked only by a 1-in-10 chance, and a 20-digit one never).
 * A run such as "2024-01-15 4111 1111 1111 1111" is split into groups and every window of groups is
 * tried, so the card is found next to other numbers.
 */
export function creditCardDetector(): Detector {
  return {
    type: 'creditCard',
    scan(value, emit) {
      if (value.length < 13 || !countDigits(value, 13)) return;
      let i = 0;
      const n = value.length;
      while (i < n) {
        if (!isDigit(value[i])) {
          i++;
          continue;
        }
        const glued = i > 0 && isAlnum(value[i - 1]);
        let groups = 0;
        let j = i;
        for (;;) {
          const start = j;
          while (j < n && isDigit(value[j])) j++;
          groupStart[groups] = start;
          groupEnd[groups] = j;
          groups++;
          const sep = value[j];
          if ((sep === 0x20 || sep === 0x2d) && isDigit(value[j + 1])) {
            j++;
            continue;
          }
          break;
        }
        const runEnd = j;
        // Digits glued to letters ("id4111...", "...1111x") are identifiers, not card numbers.
        const firstUsable = glued ? 1 : 0;
        const lastUsable = isAlnum(value[runEnd]) ? groups - 2 : groups - 1;
        let s = firstUsable;
        while (s <= lastUsable) {
          let digits = 0;
          let best = -1;
          for (let e = s; e <= lastUsable; e++) {
            digits += groupEnd[e]! - groupStart[e]!;
            if (digits > 19) break;
            if (digits >= 13 && luhnValid(value, s, e)) best = e;
          }
          if (best >= 0) {
            emit(groupStart[s]!, groupEnd[best]!);
            s = best + 1;
          } else {
            s++;
          }
        }
        i = runEnd;
      }
    },
  };
}

/**
 * US Social Security numbers in their written form NNN-NN-NNNN, with the SSA's validity rules (area
 * not 000, 666 or 9xx; group not 00; serial not 0000). Undashed nine-digit numbers are too ambiguous
 * to mask by value; mask such columns by name. Other countries' IDs: use a custom pattern.
 */
export function nationalIdDetector(): Detector {
  return {
    type: 'nationalId',
    scan(value, emit) {
      if (value.length < 11 || value.indexOf(0x2d) < 0) return;
      const n = value.length;
      for (let i = 0; i + 11 <= n; i++) {
        if (!isDigit(value[i])) continue;
        if (i > 0 && (isAlnum(value[i - 1]) || (value[i - 1] === 0x2d && isDigit(value[i - 2])))) continue;
        if (
          !isDigit(value[i + 1]) ||
          !isDigit(value[i + 2]) ||
          value[i + 3] !== 0x2d ||
          !isDigit(value[i + 4]) ||
          !isDigit(value[i + 5]) ||
          value[i + 6] !== 0x2d ||
          !isDigit(value[i + 7]) ||
          !isDigit(value[i + 8]) ||
          !isDigit(value[i + 9]) ||
          !isDigit(value[i + 10])
        ) {
          continue;
        }
        const after = value[i + 11];
        if (isAlnum(after) || (after === 0x2d && isDigit(value[i + 12]))) continue;
        const area = (value[i]! - ZERO) * 100 + (value[i + 1]! - ZERO) * 10 + (value[i + 2]! - ZERO);
        const group = (value[i + 4]! - ZERO) * 10 + (value[i + 5]! - ZERO);
        const serial =
          (value[i + 7]! - ZERO) * 1000 +
          (value[i + 8]! - ZERO) * 100 +
          (value[i + 9]! - ZERO) * 10 +
          (value[i + 10]! - ZERO);
        if (area === 0 || area === 666 || area >= 900 || group === 0 || serial === 0) continue;
        emit(i, i + 11);
        i += 10;
      }
    },
  };
}

// Internationalised addresses too (RFC 6531): letters and digits of any script.
const LABEL = '[\\p{L}\\p{N}](?:[\\p{L}\\p{N}\\-]*[\\p{L}\\p{N}])?';
const EMAIL = RE2JS.compile(`[\\p{L}\\p{N}._%+\\-]+@${LABEL}(?:\\.${LABEL})*\\.\\p{L}{2,63}`);

export function emailDetector(): Detector {
  const re = regexDetector(EMAIL, 'email');
  return {
    type: 'email',
    scan(value, emit) {
      if (value.length < 6 || value.indexOf(0x40) < 0) return;
      re.scan(value, emit);
    },
  };
}

/** IBAN lengths by country (SWIFT IBAN registry). Countries not listed are not detected. */
const IBAN_LENGTHS: Readonly<Record<string, number>> = {
  AD: 24,
  AE: 23,
  AL: 28,
  AT: 20,
  AZ: 28,
  BA: 20,
  BE: 16,
  BG: 22,
  BH: 22,
  BI: 27,
  BR: 29,
  BY: 28,
  CH: 21,
  CR: 22,
  CY: 28,
  CZ: 24,
  DE: 22,
  DJ: 27,
  DK: 18,
  DO: 28,
  EE: 20,
  EG: 29,
  ES: 24,
  FI: 18,
  FK: 18,
  FO: 18,
  FR: 27,
  GB: 22,
  GE: 22,
  GI: 23,
  GL: 18,
  GR: 27,
  GT: 28,
  HN: 28,
  HR: 21,
  HU: 28,
  IE: 22,
  IL: 23,
  IQ: 23,
  IS: 26,
  IT: 27,
  JO: 30,
  KW: 30,
  KZ: 20,
  LB: 28,
  LC: 32,
  LI: 21,
  LT: 20,
  LU: 20,
  LV: 21,
  LY: 25,
  MC: 27,
  MD: 24,
  ME: 22,
  MK: 19,
  MN: 20,
  MR: 27,
  MT: 31,
  MU: 30,
  NI: 28,
  NL: 18,
  NO: 15,
  OM: 23,
  PK: 24,
  PL: 28,
  PS: 29,
  PT: 25,
  QA: 29,
  RO: 24,
  RS: 22,
  RU: 33,
  SA: 24,
  SC: 31,
  SD: 18,
  SE: 24,
  SI: 19,
  SK: 24,
  SM: 27,
  SO: 23,
  ST: 25,
  SV: 28,
  TL: 23,
  TN: 24,
  TR: 26,
  UA: 29,
  VA: 22,
  VG: 24,
  XK: 20,
  YE: 30,
};

// Scratch for the IBAN's characters without spaces.
const ibanChars: number[] = [];

function ibanChecksumValid(length: number): boolean {
  // ISO 13616: move the first four characters to the end, letters become 10..35, mod 97 must be 1.
  let rest = 0;
  for (let k = 0; k < length; k++) {
    const b = ibanChars[(k + 4) % length]!;
    if (isDigit(b)) rest = (rest * 10 + (b - ZERO)) % 97;
    else rest = (rest * 100 + (b - 0x41 + 10)) % 97;
  }
  return rest === 1;
}

/**
 * IBANs of registry countries, electronic form or printed in groups separated by single spaces,
 * with their exact national length and a valid ISO 13616 mod-97 checksum.
 */
export function ibanDetector(): Detector {
  return {
    type: 'iban',
    scan(value, emit) {
      const n = value.length;
      if (n < 15) return;
      for (let i = 0; i + 15 <= n; i++) {
        if (!isUpper(value[i]) || !isUpper(value[i + 1]) || !isDigit(value[i + 2]) || !isDigit(value[i + 3]))
          continue;
        if (i > 0 && isAlnum(value[i - 1])) continue;
        const length = IBAN_LENGTHS[String.fromCharCode(value[i]!, value[i + 1]!)];
        if (length === undefined) continue;
        let count = 0;
        let j = i;
        while (j < n && count < length) {
          const b = value[j]!;
          if (isDigit(b) || isUpper(b)) {
            ibanChars[count++] = b;
            j++;
          } else if (b === 0x20 && count > 0 && (isDigit(value[j + 1]) || isUpper(value[j + 1]))) {
            j++;
          } else {
            break;
          }
        }
        if (count !== length || isAlnum(value[j])) continue;
        if (!ibanChecksumValid(length)) continue;
        emit(i, j);
        i = j - 1;
      }
    },
  };
}

function regexDetector(re: RE2JS, type: Detector['type']): Detector {
  return {
    type,
    scan(value, emit) {
      const m = re.matcher(value);
      let from = 0;
      while (from <= value.length && m.find(from)) {
        const start = m.start();
        const end = m.end();
        if (end > start) emit(start, end);
        from = end > start ? end : end + 1;
      }
    },
  };
}

/** A policy's own RE2 pattern, run on the cell's UTF-8 bytes; every non-empty match is masked. */
export function customDetector(pattern: string): Detector {
  return regexDetector(RE2JS.compile(pattern), 'custom');
}
