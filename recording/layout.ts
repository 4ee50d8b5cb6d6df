// Object key layout in a store (relative to the store's root / prefix). Hive-style partitions so
// Athena/Trino can query the index and S3 tools can browse by day and namespace.
import { randomBytes } from 'node:crypto';
import { SessionIdSchema } from './events.ts';

export const NO_NAMESPACE = '_none';

export interface SessionLocation {
  sessionId: string;
  date: string; // YYYY-MM-DD (UTC) of the session start
  namespace: string;
}

export function partitionDate(wallMs: number): string {
  return new Date(wallMs).toISOString().slice(0, 10);
}

export function partitionNamespace(namespace: string | undefined): string {
  return namespace && namespace.length > 0 ? namespace : NO_NAMESPACE;
}

export function sessionPrefix(loc: SessionLocation): string {
  return `sessions/date=${loc.date}/namespace=${loc.namespace}/session=${loc.sessionId}/`;
}

export function segmentName(index: number): string {
  return `seg-${String(index).padStart(6, '0')}.zst`;
}

export function manifestName(index: number): string {
  return `seg-${String(index).padStart(6, '0')}.manifest.json`;
}

/** Parses `seg-000012.zst` / `seg-000012.manifest.json`; undefined for anything else. */
export function parseSegmentName(name: string): { index: number; part: 'segment' | 'manifest' } | undefined {
  const m = /^seg-(\d{6,})\.(zst|manifest\.json)$/.exec(name);
  if (!m) return undefined;
  return { index: Number(m[1]), part: m[2] === 'zst' ? 'segment' : 'manifest' };
}

export function indexKey(loc: SessionLocation): string {
  return `index/date=${loc.date}/namespace=${loc.namespace}/${loc.sessionId}.json`;
}

/** A tiny unsigned locator so a session can be found by id alone. */
export function pointerKey(sessionId: string): string {
  return `ids/${sessionId}.json`;
}

export function assertSessionId(id: string): string {
  const r = SessionIdSchema.safeParse(id);
  if (!r.success) throw new Error(`invalid session id ${JSON.stringify(id)}: ${r.error.issues[0]?.message}`);
  return id;
}

/** UUIDv7 (RFC 9562): 48-bit Unix ms timestamp, then random bits; sorts by creation time. */
export function newSessionId(nowMs = Date.now()): string {
  const b = randomBytes(16);
  b.writeUIntBE(nowMs, 0, 6);
  b[6] = (b[6]! & 0x0f) | 0x70;
  b[8] = (b[8]! & 0x3f) | 0x80;
  const h = b.toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}
