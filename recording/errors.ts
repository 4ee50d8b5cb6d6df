// Errors callers may want to tell apart. Messages are one line and say what to do.

export class RecordingError extends Error {
  override name = 'RecordingError';
}

/** failClosed: the spool is over its limit (usually because the store is unreachable). */
export class SpoolFullError extends RecordingError {
  override name = 'SpoolFullError';
}

export class RecorderClosedError extends RecordingError {
  override name = 'RecorderClosedError';
}

export class SessionNotFoundError extends RecordingError {
  override name = 'SessionNotFoundError';
}

/** The store refused or could not be reached; `code` is a stable short reason. */
export class StoreError extends RecordingError {
  override name = 'StoreError';
  readonly code:
    | 'unreachable'
    | 'no-credentials'
    | 'bad-credentials'
    | 'no-bucket'
    | 'denied'
    | 'conflict'
    | 'other';
  constructor(code: StoreError['code'], message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
  }
}

export class KeyError extends RecordingError {
  override name = 'KeyError';
}
