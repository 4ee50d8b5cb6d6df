// The protocol-independent session core every gateway (postgres, ssh, http, kubernetes) builds on:
// login (identity -> credentials -> recording -> upstream), the command decision (guardrail, alert,
// approval -> forward or refuse), result capture (sampling, masking, recording) and the listener
// life (bind, track sessions, stop accepting, drain).
export {
  addSample,
  MASK_EVERYTHING,
  nowNs,
  type ResultCapture,
  type ResultEvent,
  recordResult,
  resetCapture,
  type SampleLimits,
  wantsSample,
} from './capture.ts';
export type { CoreRuntime, CoreServices, Protocol } from './context.ts';
export {
  type Command,
  CommandDecider,
  type GuardAction,
  type GuardDecision,
  type Verdict,
} from './decision.ts';
export {
  GatewayListener,
  type GatewayListenerOptions,
  type ListenedSession,
  type ListenerRuntime,
} from './gateway-listener.ts';
export { type HeaderInput, sessionHeader } from './header.ts';
export { type LoginRequest, type LoginResult, SessionCore } from './login.ts';
export { RecordingChannel } from './recording-channel.ts';
