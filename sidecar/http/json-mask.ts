// Masking of HTTP response bodies with the policy's masking rules: in JSON, a field whose name
// matches a `columns` pattern is masked whole and every string value is scanned by the detectors;
// in text, the detectors run over the whole body. Reuses the SQL result masker (one "column" per
// field name), so strategies and detectors behave exactly as for PostgreSQL.
import type { Masking } from '../../crds/index.ts';
import { type Masker, PG_TYPE, type RowMasker } from '../server/modules.ts';

export interface BodyMaskResult {
  body: Buffer;
  /** JSON paths (or "body") that were masked. */
  masked: string[];
}

export function isJson(mime: string | undefined): boolean {
  return mime !== undefined && /^application\/([a-z0-9.+-]*\+)?json\b/i.test(mime);
}
export function isText(mime: string | undefined): boolean {
  return mime !== undefined && /^text\//i.test(mime);
}

export class BodyMasker {
  private readonly byField = new Map<string, RowMasker>();

  /** false: the policy has no masking rule, so bodies may stream through untouched. */
  readonly active: boolean;

  private readonly masker: Masker;

  constructor(masker: Masker, masking: Masking) {
    this.masker = masker;
    this.active = masking.columns.length > 0 || masking.detectors.length > 0;
  }

  private field(name: string): RowMasker {
    let m = this.byField.get(name);
    if (!m) {
      m = this.masker.forColumns([{ name, dataTypeID: PG_TYPE.text, format: 'text' }]);
      if (this.byField.size < 4096) this.byField.set(name, m);
    }
    return m;
  }

  private maskString(field: string, value: string): string | undefined {
    const r = this.field(field).maskRow([Buffer.from(value)]);
    if (r.maskedCells === 0) return undefined;
    return r.values[0]?.toString('utf8') ?? '';
  }

  /** Masks a parsed JSON document in place; returns the masked paths. */
  maskJson(doc: unknown): string[] {
    const masked: string[] = [];
    const walk = (v: unknown, field: string, at: string): unknown => {
      if (typeof v === 'string') {
        const m = this.maskString(field, v);
        if (m === undefined) return v;
        masked.push(at || '$');
        return m;
      }
      if (typeof v === 'number' || typeof v === 'boolean') {
        const m = this.maskString(field, String(v));
        if (m === undefined) return v;
        masked.push(at || '$');
        return m;
      }
      if (Array.isArray(v)) {
        for (let i = 0; i < v.length; i++) v[i] = walk(v[i], field, `${at}[${i}]`);
        return v;
      }
      if (v !== null && typeof v === 'object') {
        const o = v as Record<string, unknown>;
        for (const k of Object.keys(o)) {
          const whole = this.field(k).plans[0]?.byName;
          if (whole && o[k] !== null && typeof o[k] === 'object') {
            o[k] = this.maskString(k, JSON.stringify(o[k])) ?? o[k];
            masked.push(at ? `${at}.${k}` : k);
            continue;
          }
          o[k] = walk(o[k], k, at ? `${at}.${k}` : k);
        }
      }
      return v;
    };
    const out = walk(doc, '', '');
    if (out !== doc) throw new Error('top-level JSON scalar masked');
    return masked;
  }

  /** Masks a whole body by its media type; undefined when the body is neither JSON nor text. */
  maskBody(body: Buffer, mime: string | undefined): BodyMaskResult | undefined {
    if (isJson(mime)) {
      let doc: unknown;
      try {
        doc = JSON.parse(body.toString('utf8'));
      } catch {
        // Declared JSON but not JSON: masked as text so nothing slips through.
        return this.maskText(body);
      }
      if (doc === null || typeof doc !== 'object') return this.maskText(body);
      const masked = this.maskJson(doc);
      return masked.length === 0 ? { body, masked } : { body: Buffer.from(JSON.stringify(doc)), masked };
    }
    if (isText(mime)) return this.maskText(body);
    return undefined;
  }

  private maskText(body: Buffer): BodyMaskResult {
    const r = this.field('').maskRow([body]);
    return r.maskedCells === 0
      ? { body, masked: [] }
      : { body: r.values[0] ?? Buffer.alloc(0), masked: ['body'] };
  }
}
