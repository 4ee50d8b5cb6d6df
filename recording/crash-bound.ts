// The bound that makes a crash's loss finite: how many appends of one session a caller may leave
// unacknowledged (appended, not yet durable in the spool journal) before it waits. A SIGKILL loses
// at most those, so recovery writes this number into the session's `recording.gap` (cause
// `crash`) as the upper bound of what may be missing. The recorder cannot enforce it without
// waiting on its hot path, so callers (the sidecar's per-session recording channel) do; they pass
// the value they enforce as `RecorderOptions.maxUnsettledAppends`.
export const DEFAULT_MAX_UNSETTLED_APPENDS = 1024;
