// The request target an agent sends, read the one way the sidecar and any standard upstream agree
// on. Guardrails match the decoded path; anything two servers could read differently (dot
// segments, encoded slashes or backslashes, empty segments, double encoding, absolute-form URLs
// that name another host) is refused instead of guessed.

export interface RequestTarget {
  /** The path as sent (percent-encoded), forwarded unchanged. */
  rawPath: string;
  /** The path percent-decoded once: what guardrails match. */
  path: string;
  /** The query string without "?", as sent ('' when none). */
  query: string;
}

export type TargetResult = { ok: true; target: RequestTarget } | { ok: false; problem: string };

const HEX = /^[0-9A-Fa-f]{2}$/;

/** Parses an origin-form request target ("/a/b?c"); every other form is refused. */
export function parseRequestTarget(url: string): TargetResult {
  if (!url.startsWith('/')) return fail('only origin-form request targets ("/path") are accepted');
  if (url.startsWith('//')) return fail('a request target may not start with "//"');
  if (url.includes('#')) return fail('a fragment in the request target');
  const q = url.indexOf('?');
  const rawPath = q < 0 ? url : url.slice(0, q);
  const query = q < 0 ? '' : url.slice(q + 1);
  if (rawPath.includes('\\')) return fail('a backslash in the path');
  let decoded = '';
  for (let i = 0; i < rawPath.length; i++) {
    const c = rawPath[i]!;
    const code = rawPath.charCodeAt(i);
    if (code <= 0x20 || code >= 0x7f) return fail('a control, space or non-ASCII character in the path');
    if (c !== '%') {
      decoded += c;
      continue;
    }
    const hex = rawPath.slice(i + 1, i + 3);
    if (!HEX.test(hex)) return fail('a malformed percent-encoding in the path');
    const byte = Number.parseInt(hex, 16);
    if (byte === 0x2f || byte === 0x5c) return fail('an encoded "/" or "\\" in the path');
    if (byte < 0x20 || byte === 0x7f) return fail('an encoded control character in the path');
    if (byte === 0x25 && HEX.test(rawPath.slice(i + 3, i + 5)))
      return fail('a double percent-encoding in the path');
    decoded += `%${hex}`;
    i += 2;
  }
  let path: string;
  try {
    path = decodeURIComponent(decoded);
  } catch {
    return fail('the path does not decode as UTF-8');
  }
  const segments = path.split('/').slice(1);
  for (let i = 0; i < segments.length; i++) {
    const s = segments[i]!;
    if (s === '.' || s === '..') return fail('a dot segment in the path');
    if (s === '' && i < segments.length - 1) return fail('an empty segment ("//") in the path');
  }
  return { ok: true, target: { rawPath, path, query } };
}

function fail(problem: string): TargetResult {
  return { ok: false, problem };
}
