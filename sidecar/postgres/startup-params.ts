// Which startup parameters an agent may send, and what the sidecar sends upstream in their place.
// Startup parameters are settings applied before the first statement, out of the guard's sight:
// `role` or `session_authorization` would change who runs every statement, `options=-c ...` can set
// any setting, and the lexing settings decide how the guard must read SQL (sidecar/policy/sql/
// lexing.ts). The default is an allowlist: parameters PostgreSQL drivers send in practice whose
// effects are harmless for the guard; anything else refuses the session under STARTUP_RULE.
import { LEXING_SETTINGS, lexingSettingProblem, pinnedLexingParams } from '../policy/sql/lexing.ts';

export const STARTUP_RULE = 'startup-parameters';

/** Settings an agent may give at startup, directly or in `options` (names compared lower-cased). */
const ALLOWED_SETTINGS: ReadonlySet<string> = new Set([
  'application_name',
  'client_encoding',
  'datestyle',
  'timezone',
  'intervalstyle',
  'extra_float_digits',
  'search_path',
  'standard_conforming_strings',
  'statement_timeout',
  'lock_timeout',
  'idle_in_transaction_session_timeout',
  'idle_session_timeout',
  'default_transaction_isolation',
  'default_transaction_read_only',
  'bytea_output',
  'lc_messages',
  'lc_monetary',
  'lc_numeric',
  'lc_time',
  'work_mem',
  'jit',
]);

/** Parameters of the startup packet itself that are not settings. */
const PROTOCOL_PARAMS: ReadonlySet<string> = new Set(['user', 'database', 'options', 'replication']);

/** `options` as the server splits it: whitespace-separated, a backslash escapes the next character. */
export function splitOptions(options: string): string[] {
  const out: string[] = [];
  let cur = '';
  let has = false;
  for (let i = 0; i < options.length; i++) {
    const ch = options[i]!;
    if (ch === '\\' && i + 1 < options.length) {
      cur += options[++i];
      has = true;
    } else if (/\s/.test(ch)) {
      if (has) out.push(cur);
      cur = '';
      has = false;
    } else {
      cur += ch;
      has = true;
    }
  }
  if (has) out.push(cur);
  return out;
}

/** The settings `options` sets (-c name=value, --name=value); a string when it holds anything else. */
export function parseOptions(options: string): Map<string, string> | string {
  const settings = new Map<string, string>();
  const words = splitOptions(options);
  for (let i = 0; i < words.length; i++) {
    const w = words[i]!;
    let assignment: string | undefined;
    if (w === '-c') assignment = words[++i];
    else if (w.startsWith('-c')) assignment = w.slice(2);
    else if (w.startsWith('--')) assignment = w.slice(2);
    else return `option ${w} is not allowed`;
    const eq = assignment?.indexOf('=') ?? -1;
    if (assignment === undefined || eq <= 0) return `option ${w} is not a setting assignment`;
    // The server treats - and _ alike in option names.
    settings.set(assignment.slice(0, eq).replaceAll('-', '_').toLowerCase(), assignment.slice(eq + 1));
  }
  return settings;
}

export type StartupCheck = { ok: true; upstream: Record<string, string> } | { ok: false; problem: string };

/**
 * Checks the agent's startup parameters; on success, the parameters to send upstream (without user
 * and database, which the caller sets) with the lexing settings pinned.
 */
export function checkStartupParams(params: Record<string, string>): StartupCheck {
  const settings = new Map<string, string>();
  for (const [key, value] of Object.entries(params)) {
    if (key === 'user' || key === 'database' || key === 'replication') continue;
    if (key === 'options') {
      const parsed = parseOptions(value);
      if (typeof parsed === 'string') return { ok: false, problem: `startup parameter options: ${parsed}` };
      for (const [k, v] of parsed) settings.set(k, v);
      continue;
    }
    settings.set(key.toLowerCase(), value);
  }
  for (const [name, value] of settings) {
    if (!ALLOWED_SETTINGS.has(name) || PROTOCOL_PARAMS.has(name)) {
      return { ok: false, problem: `startup parameter ${name} is not allowed through the sidecar` };
    }
    if (LEXING_SETTINGS.has(name)) {
      const problem = lexingSettingProblem(name, value);
      if (problem !== undefined) return { ok: false, problem };
    }
  }
  const upstream: Record<string, string> = {};
  for (const [name, value] of settings) if (!LEXING_SETTINGS.has(name)) upstream[name] = value;
  Object.assign(upstream, pinnedLexingParams(settings.get('client_encoding')));
  return { ok: true, upstream };
}
