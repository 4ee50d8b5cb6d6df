// Public API of recording/: the sidecar writes through openRecorder, the CLI and auditors read and
// verify through openStore / listSessions / readSession / verifySession.
export { canonicalJson } from './canonical-json.ts';
export { DEFAULT_MAX_UNSETTLED_APPENDS } from './crash-bound.ts';
export {
  KeyError,
  RecorderClosedError,
  RecordingError,
  SessionNotFoundError,
  SpoolFullError,
  StoreError,
} from './errors.ts';
export type {
  Direction,
  EventInput,
  Gap,
  GapCause,
  RecordedEvent,
  SessionHeader,
  SessionHeaderInput,
} from './events.ts';
export {
  ApprovalDecidedSchema,
  ApprovalRequestedSchema,
  GapCauseSchema,
  GapSchema,
  PolicyBlockedSchema,
  PolicyMaskedSchema,
  RecordedEventSchema,
  SessionHeaderInputSchema,
  SessionHeaderSchema,
  SessionIdSchema,
} from './events.ts';
export {
  HttpBodySchema,
  HttpHeadersSchema,
  HttpKinds,
  type HttpRequestEvent,
  HttpRequestSchema,
  type HttpResponseEvent,
  HttpResponseSchema,
  type KubeRequestAttributes,
  KubeRequestAttributesSchema,
  type WatchEvent,
  WatchEventSchema,
  type WebSocketMessage,
  WebSocketMessageSchema,
} from './http-events.ts';
export { type SessionIndex, SessionIndexSchema } from './index-record.ts';
export {
  generateSigningKey,
  loadPublicKeys,
  loadSigningKey,
  type PublicKeysInput,
  publicKeyFingerprint,
} from './keys.ts';
export {
  indexKey,
  newSessionId,
  partitionDate,
  pointerKey,
  type SessionLocation,
  segmentName,
  sessionPrefix,
} from './layout.ts';
export { type SegmentManifest, SegmentManifestSchema } from './manifest.ts';
export {
  getSessionIndex,
  type ListedSession,
  listSessions,
  type ReadOptions,
  readSession,
  type SessionFilter,
  type VerifyReport,
  verifySession,
} from './reader.ts';
export {
  DEFAULT_COMMIT_WINDOW_MS,
  DEFAULT_SPOOL_LIMIT_BYTES,
  openRecorder,
  type Recorder,
  type RecorderOptions,
  type RecorderStatus,
} from './recorder.ts';
export { locateSession, VerificationError, type VerifyReason } from './session-walk.ts';
export type { SessionRecording } from './session-writer.ts';
export { openStore } from './stores/open-store.ts';
export type { S3Options } from './stores/s3-store.ts';
export type { PutOptions, SegmentStore } from './stores/store.ts';
export {
  type TerminalData,
  TerminalDataSchema,
  type TerminalExit,
  TerminalExitSchema,
  type TerminalFile,
  TerminalFileSchema,
  TerminalKinds,
  type TerminalOpen,
  TerminalOpenSchema,
  type TerminalResize,
  TerminalResizeSchema,
} from './terminal-events.ts';
