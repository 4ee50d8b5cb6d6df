// The event model. Every recorded line of a segment is a RecordedEvent; the first event of a
// session (seq 0) is `session.start` whose payload is the SessionHeader; the last is `session.end`.
// Kinds starting with `session.` and `recording.` are written by the recorder itself.
import { z } from 'zod';
import { httpPayloadSchemas } from './http-events.ts';
import { terminalPayloadSchemas } from './terminal-events.ts';

export const DirectionSchema = z.enum(['client', 'server', 'internal']);
export type Direction = z.infer<typeof DirectionSchema>;

export const ProtocolSchema = z.enum(['postgres', 'ssh', 'http', 'kubernetes']);

const sessionIdPattern = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;
export const SessionIdSchema = z
  .string()
  .regex(sessionIdPattern, 'session id: 1-128 of [A-Za-z0-9._-], not starting with . _ -');

export const SessionHeaderInputSchema = z.object({
  sessionId: SessionIdSchema.optional(),
  protocol: ProtocolSchema,
  target: z.object({
    name: z.string().min(1),
    host: z.string().min(1),
    port: z.number().int().min(0).max(65535),
  }),
  identity: z.object({
    subject: z.string().optional(),
    issuer: z.string().optional(),
    claims: z.record(z.string(), z.unknown()).optional(),
    serviceAccount: z.string().optional(),
    pod: z.string().optional(),
    namespace: z
      .string()
      .regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/, 'namespace must be a DNS label')
      .max(63)
      .optional(),
    node: z.string().optional(),
    podUid: z.string().optional(),
    source: z.string().optional(),
    /** Attribution: the user who launched the workload, and the whole chain (sidecar/identity). */
    launchedBy: z.string().optional(),
    attribution: z.record(z.string(), z.unknown()).optional(),
    flags: z.array(z.record(z.string(), z.unknown())).optional(),
  }),
  policy: z
    .object({ name: z.string(), namespace: z.string().optional(), generation: z.number().int().optional() })
    .optional(),
  sidecarVersion: z.string().min(1),
  labels: z.record(z.string(), z.string()).optional(),
});
export type SessionHeaderInput = z.input<typeof SessionHeaderInputSchema>;

/** Payload of `session.start`: the header as given plus what the recorder adds. */
export const SessionHeaderSchema = SessionHeaderInputSchema.extend({
  sessionId: SessionIdSchema,
  startedAt: z.string(),
  startedAtMs: z.number().int(),
  recorder: z.object({
    format: z.literal('chaperone.recording/v1'),
    keyId: z.string(),
    keyFingerprint: z.string(),
  }),
});
export type SessionHeader = z.infer<typeof SessionHeaderSchema>;

export const RecordedEventSchema = z.object({
  seq: z.number().int().min(0),
  wallMs: z.number().int(),
  /** Monotonic clock of the writer process in ns, decimal string (comparable within one process). */
  monoNs: z.string().regex(/^\d+$/),
  direction: DirectionSchema,
  kind: z.string().min(1),
  payload: z.record(z.string(), z.unknown()),
});
export type RecordedEvent = z.infer<typeof RecordedEventSchema>;

export interface EventInput {
  kind: string;
  direction: Direction;
  payload: Record<string, unknown>;
  /** When the bytes were seen, if not "now". */
  at?: { wallMs: number; monoNs: bigint };
  /**
   * Short human text for the session index's command sample (SQL text, shell command, ...). On
   * policy.blocked and approval.requested it is sampled but not counted as a command run.
   */
  summary?: string;
  /**
   * The caller waits for this event to be durable before going on (recording.durability strict):
   * its group commit is written at once rather than after the recorder's commit window.
   */
  urgent?: boolean;
}

// Policy decisions.
export const PolicyBlockedSchema = z.object({
  rule: z.string(),
  reason: z.string(),
  command: z.string().optional(),
});
export const PolicyMaskedSchema = z.object({
  rule: z.string(),
  fields: z.array(z.string()),
  count: z.number().int().min(0).optional(),
});
export const ApprovalRequestedSchema = z.object({
  approval: z.string(),
  reason: z.string().optional(),
  command: z.string().optional(),
});
export const ApprovalDecidedSchema = z.object({
  approval: z.string(),
  approver: z.string().min(1),
  reason: z.string().optional(),
});

// Written by the recorder.
export const GapCauseSchema = z.enum(['spool-full', 'torn-record', 'crash']);
export type GapCause = z.infer<typeof GapCauseSchema>;

/**
 * A stretch of the session that is not in the recording, and why:
 * - `spool-full`: failOpen with a full spool; `fromSeq..toSeq` were not kept.
 * - `torn-record`: journal bytes that do not read back (a write cut by a crash, or damage); with
 *   `fromSeq..toSeq` when the records around it name the lost seqs, else `afterSeq`.
 * - `crash`: the writer stopped without ending the session; events after `afterSeq` that were not
 *   yet durable are missing, at most `maxEvents` (the writer's bound on unacknowledged appends).
 */
export const GapSchema = z.object({
  cause: GapCauseSchema,
  reason: z.string(),
  /** First and last sequence number that could not be kept (absent when unknown). */
  fromSeq: z.number().int().optional(),
  toSeq: z.number().int().optional(),
  /** When the lost seqs are unknown: the last seq that was kept before the loss. */
  afterSeq: z.number().int().optional(),
  /** Events known to be lost (counted in `lostEvents`). */
  events: z.number().int().min(0),
  /** Upper bound of the events that may be lost, when only a bound is known (crash). */
  maxEvents: z.number().int().min(0).optional(),
  bytes: z.number().int().min(0),
  fromWallMs: z.number().int().optional(),
  toWallMs: z.number().int().optional(),
});
export type Gap = z.infer<typeof GapSchema>;

export const RecoveredSchema = z.object({
  reason: z.string(),
  lastSealedSeq: z.number().int(),
  recoveredEvents: z.number().int().min(0),
  tornRecords: z.number().int().min(0),
  tornBytes: z.number().int().min(0),
});

export const SessionEndSchema = z.object({
  reason: z.string(),
  counts: z.record(z.string(), z.number()).optional(),
  events: z.number().int(),
  rawBytes: z.number().int(),
  gaps: z.number().int(),
  lostEvents: z.number().int(),
  recovered: z.boolean(),
});

export const knownPayloadSchemas: Record<string, z.ZodType> = {
  'policy.blocked': PolicyBlockedSchema,
  'policy.masked': PolicyMaskedSchema,
  'approval.requested': ApprovalRequestedSchema,
  'approval.granted': ApprovalDecidedSchema,
  'approval.denied': ApprovalDecidedSchema,
  'recording.gap': GapSchema,
  'recording.recovered': RecoveredSchema,
  'session.start': SessionHeaderSchema,
  'session.end': SessionEndSchema,
  ...terminalPayloadSchemas,
  ...httpPayloadSchemas,
};

export function isReservedKind(kind: string): boolean {
  return kind.startsWith('session.') || kind.startsWith('recording.');
}
