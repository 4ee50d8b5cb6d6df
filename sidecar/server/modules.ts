// The one seam to the identity, policy and recording modules.
export {
  DEFAULT_MAX_UNSETTLED_APPENDS,
  generateSigningKey,
  listSessions,
  openRecorder,
  openStore,
  type Recorder,
  type RecorderOptions,
  readSession,
  type SessionRecording,
} from '../../recording/index.ts';
export {
  type AgentIdentity,
  type AttributionChain,
  createIdentityVerifier,
  IdentityError,
  type IdentityVerifier,
  identityAttribution,
  type PodIdentity,
  podIdentityFromEnv,
} from '../identity/index.ts';
export { createKubernetesApprovalBackend, loadKubeConfig } from '../kubernetes-approvals/index.ts';
export * from '../policy/index.ts';
