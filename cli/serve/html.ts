// HTML built with one tagged template that escapes every interpolated value. Recordings hold
// attacker-controlled text (SQL, terminal output, HTTP bodies): nothing reaches a page unescaped
// unless it is a Html value built here.

const ESCAPES: Record<string, string> = {
  '&': '&amp;',
  '<': '&lt;',
  '>': '&gt;',
  '"': '&quot;',
  "'": '&#39;',
  '`': '&#96;',
};

export function escapeHtml(value: string): string {
  return value.replace(/[&<>"'`]/g, (c) => ESCAPES[c]!);
}

/** A fragment already safe to place in a page. Only html`` and joinHtml make one. */
export class Html {
  readonly #text: string;
  private constructor(text: string) {
    this.#text = text;
  }
  toString(): string {
    return this.#text;
  }
  /** @internal: callers use html`` and joinHtml. */
  static trusted(text: string): Html {
    return new Html(text);
  }
}

type Value = Html | string | number | boolean | null | undefined | readonly Value[];

function render(v: Value): string {
  if (v === null || v === undefined || v === false) return '';
  if (v instanceof Html) return v.toString();
  if (Array.isArray(v)) return v.map(render).join('');
  return escapeHtml(String(v));
}

/** html`<p>${text}</p>`: strings and numbers are escaped, Html fragments and arrays of them are not. */
export function html(strings: TemplateStringsArray, ...values: Value[]): Html {
  let out = strings[0] ?? '';
  for (let i = 0; i < values.length; i++) out += render(values[i]!) + (strings[i + 1] ?? '');
  return Html.trusted(out);
}

export function joinHtml(parts: readonly Html[], separator = ''): Html {
  return Html.trusted(parts.map(String).join(escapeHtml(separator)));
}

/** A query string from a record, skipping empty values. */
export function query(params: Record<string, string | number | undefined>): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== '') q.set(k, String(v));
  const s = q.toString();
  return s ? `?${s}` : '';
}
