// Public face of sidecar/policy: guardrails for SQL, masking of result rows, approvals and alerts.
export {
  type Alert,
  type AlertKind,
  type AlertSink,
  type AlertSinkOptions,
  createAlertSink,
  withApprovalReview,
} from './alerts/index.ts';
export {
  type ApprovalBackend,
  type ApprovalDecision,
  type ApprovalRequest,
  createApprovalBackend,
  createDenyingApprovalBackend,
  createLocalApprovalBackend,
  decideLocalApproval,
  type IgnoredDecision,
  type LocalDecision,
  listPendingLocalApprovals,
} from './approvals/index.ts';
export {
  type ColumnInfo,
  type ColumnPlanSummary,
  createMasker,
  type Masker,
  type MaskerOptions,
  type MaskResult,
  type MaskStrategy,
  PG_TYPE,
  type RowMasker,
} from './masking/index.ts';
export {
  classifySql,
  createSqlGuard,
  loadSqlParser,
  type SqlClassification,
  type SqlDecision,
  type SqlGuard,
  type SqlGuardOptions,
} from './sql/index.ts';
