// The session settings that decide how PostgreSQL splits SQL text into tokens, and the one value of
// each the guard models. The guard parses with libpg_query, which lexes as a server with
// standard_conforming_strings = on reading UTF-8. If the session lexed differently, a statement the
// guard reads as one harmless string literal could run as several statements on the server:
// - standard_conforming_strings = off makes a backslash in '...' an escape ('a\'; DROP ...').
// - client encodings SJIS, BIG5, GBK, GB18030, UHC and JOHAB have multibyte characters whose second
//   byte can be 0x5c (backslash) or 0x27 (quote): the server sees one character where the guard
//   sees a quote. Every other encoding is "ASCII-safe", but the guard and the recording decode UTF-8,
//   so only UTF8 and SQL_ASCII (bytes as they are, validated as UTF-8 by a UTF8 server) are modelled.
// - backslash_quote only decides whether \' in an E'' string is accepted or an error; with a safe
//   encoding no value makes the server split text differently, so it is not restricted.
// The sidecar pins standard_conforming_strings and client_encoding in the upstream startup packet
// (startup values outrank ALTER ROLE / ALTER DATABASE defaults, and RESET returns to them) and the
// guard refuses statements that set another value (rule LEXING_RULE).

/** The built-in rule name recorded and shown when a lexing setting is refused. */
export const LEXING_RULE = 'lexing-settings';

export const LEXING_SETTINGS: ReadonlySet<string> = new Set([
  'standard_conforming_strings',
  'client_encoding',
  'backslash_quote',
]);

/** Client encodings whose multibyte characters may hold a backslash or quote byte. */
const UNSAFE_ENCODINGS = new Set(['sjis', 'shiftjis', 'mskanji', 'big5', 'gbk', 'gb18030', 'uhc', 'johab']);
/** Encodings the guard models: UTF-8 under each of PostgreSQL's spellings, and SQL_ASCII. */
const MODELLED_ENCODINGS = new Set(['utf8', 'unicode', 'sqlascii']);
const ON_WORDS = new Set(['on', 'true', 'yes', '1', 't', 'y']);

/** PostgreSQL compares encoding names ignoring case and anything but letters and digits. */
export function normalizeEncoding(name: string): string {
  return name.toLowerCase().replace(/[^a-z0-9]/g, '');
}

/** Why a session may not use this value of a lexing setting; undefined when the guard models it. */
export function lexingSettingProblem(setting: string, value: string): string | undefined {
  const name = setting.toLowerCase();
  const v = value.trim().toLowerCase();
  if (name === 'standard_conforming_strings') {
    return ON_WORDS.has(v)
      ? undefined
      : `standard_conforming_strings = ${value} would make backslashes in '...' escapes, which the guard does not model`;
  }
  if (name === 'client_encoding') {
    const enc = normalizeEncoding(value);
    if (MODELLED_ENCODINGS.has(enc)) return undefined;
    if (UNSAFE_ENCODINGS.has(enc)) {
      return `client_encoding ${value} is unsafe: its multibyte characters can contain a backslash or quote byte`;
    }
    return `client_encoding ${value} is not modelled by the guard (use UTF8)`;
  }
  return undefined;
}

/** The values pinned in the upstream startup packet, whatever the agent sends. */
export function pinnedLexingParams(clientEncoding: string | undefined): Record<string, string> {
  return {
    standard_conforming_strings: 'on',
    client_encoding:
      clientEncoding && normalizeEncoding(clientEncoding) === 'sqlascii' ? 'SQL_ASCII' : 'UTF8',
  };
}
