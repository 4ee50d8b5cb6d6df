// The per-session index object: one signed JSON line, Hive-partitioned by date and namespace, so
// sessions can be listed without reading segments (and queried by Athena/Trino as JSON Lines).
import { z } from 'zod';
import { canonicalJson } from './canonical-json.ts';
import type { SessionHeader } from './events.ts';
import { type SigningKey, signDocument } from './keys.ts';

export const INDEX_FORMAT = 'chaperone.index/v1';
export const COMMAND_SAMPLE_LIMIT = 50;
export const COMMAND_TEXT_LIMIT = 200;

export const SessionIndexSchema = z.object({
  format: z.literal(INDEX_FORMAT),
  sessionId: z.string(),
  date: z.string(),
  namespace: z.string(),
  status: z.enum(['open', 'ended', 'recovered']),
  recovered: z.boolean(),
  startedAt: z.string(),
  startedAtMs: z.number().int(),
  endedAt: z.string().optional(),
  endedAtMs: z.number().int().optional(),
  endReason: z.string().optional(),
  protocol: z.string(),
  target: z.object({ name: z.string(), host: z.string(), port: z.number().int() }),
  targetName: z.string(),
  subject: z.string().optional(),
  issuer: z.string().optional(),
  serviceAccount: z.string().optional(),
  pod: z.string().optional(),
  podUid: z.string().optional(),
  node: z.string().optional(),
  source: z.string().optional(),
  launchedBy: z.string().optional(),
  policy: z
    .object({ name: z.string(), namespace: z.string().optional(), generation: z.number().int().optional() })
    .optional(),
  sidecarVersion: z.string(),
  labels: z.record(z.string(), z.string()),
  events: z.number().int(),
  rawBytes: z.number().int(),
  segments: z.number().int(),
  lastSeq: z.number().int(),
  lastSegmentSha256: z.string().nullable(),
  gaps: z.number().int(),
  lostEvents: z.number().int(),
  countsByKind: z.record(z.string(), z.number()),
  commands: z.object({ total: z.number().int(), sample: z.array(z.string()) }),
  updatedAt: z.string(),
  keyId: z.string(),
  keyFingerprint: z.string(),
  signature: z.string(),
});
export type SessionIndex = z.infer<typeof SessionIndexSchema>;

/** Running totals of a session, persisted with its spool state and summarised in the index. */
export interface SessionTotals {
  events: number;
  rawBytes: number;
  segments: number;
  lastSeq: number;
  lastSegmentSha256: string | null;
  gaps: number;
  lostEvents: number;
  countsByKind: Record<string, number>;
  commands: { total: number; sample: string[] };
}

export function emptyTotals(): SessionTotals {
  return {
    events: 0,
    rawBytes: 0,
    segments: 0,
    lastSeq: -1,
    lastSegmentSha256: null,
    gaps: 0,
    lostEvents: 0,
    countsByKind: {},
    commands: { total: 0, sample: [] },
  };
}

/**
 * ran false: an attempt (refused, or waiting for approval) enters the sample, so an auditor's text
 * search finds the blocked DROP TABLE, but not the count of commands run.
 */
export function noteCommand(totals: SessionTotals, text: string, ran = true): void {
  if (ran) totals.commands.total++;
  if (totals.commands.sample.length >= COMMAND_SAMPLE_LIMIT) return;
  const short = text.length > COMMAND_TEXT_LIMIT ? `${text.slice(0, COMMAND_TEXT_LIMIT - 3)}...` : text;
  if (!totals.commands.sample.includes(short)) totals.commands.sample.push(short);
}

export interface IndexState {
  header: SessionHeader;
  date: string;
  namespace: string;
  status: SessionIndex['status'];
  endedAtMs?: number;
  endReason?: string;
  totals: SessionTotals;
}

export function buildIndex(state: IndexState, key: SigningKey, nowMs = Date.now()): SessionIndex {
  const h = state.header;
  const id = h.identity;
  const body = {
    format: INDEX_FORMAT,
    sessionId: h.sessionId,
    date: state.date,
    namespace: state.namespace,
    status: state.status,
    recovered: state.status === 'recovered',
    startedAt: h.startedAt,
    startedAtMs: h.startedAtMs,
    ...(state.endedAtMs !== undefined
      ? {
          endedAt: new Date(state.endedAtMs).toISOString(),
          endedAtMs: state.endedAtMs,
          endReason: state.endReason,
        }
      : {}),
    protocol: h.protocol,
    target: h.target,
    targetName: h.target.name,
    subject: id.subject,
    issuer: id.issuer,
    serviceAccount: id.serviceAccount,
    pod: id.pod,
    podUid: id.podUid,
    node: id.node,
    source: id.source,
    launchedBy: id.launchedBy,
    policy: h.policy,
    sidecarVersion: h.sidecarVersion,
    labels: h.labels ?? {},
    events: state.totals.events,
    rawBytes: state.totals.rawBytes,
    segments: state.totals.segments,
    lastSeq: state.totals.lastSeq,
    lastSegmentSha256: state.totals.lastSegmentSha256,
    gaps: state.totals.gaps,
    lostEvents: state.totals.lostEvents,
    countsByKind: state.totals.countsByKind,
    commands: state.totals.commands,
    updatedAt: new Date(nowMs).toISOString(),
    keyId: key.keyId,
    keyFingerprint: key.fingerprint,
  };
  return signDocument(JSON.parse(JSON.stringify(body)) as Omit<SessionIndex, 'signature'>, key);
}

/** The stored index object: JSON Lines with one line (canonical JSON). */
export function encodeIndex(index: SessionIndex): Buffer {
  return Buffer.from(`${canonicalJson(index)}\n`, 'utf8');
}
