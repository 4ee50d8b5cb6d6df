export type AlertKind =
  | 'blocked'
  | 'approval'
  | 'deniedSubject'
  | 'alert'
  | 'invalidToken'
  | 'identityRevoked'
  | 'offboarded';

/** A policy hit worth telling a human about. Alerts are notifications; the recording is the evidence. */
export interface Alert {
  kind: AlertKind;
  sessionId?: string;
  subject?: string;
  target: string;
  rule?: string;
  statement?: string;
  message: string;
  /** Who launched the workload -> workload -> pod -> service account -> token (sidecar/identity). */
  attribution?: {
    launcher?: { username: string; unattributed?: boolean };
    workload?: { kind: string; name?: string };
    pod?: { namespace?: string; name?: string };
    serviceAccount?: string;
    token?: { subject: string };
  };
  /** Where a reviewer decides it (approval alerts, Kubernetes backend): rendered as kubectl commands. */
  review?: ApprovalReview;
}

/** A SessionApproval to decide: by its name when known, else the session's one pending request. */
export interface ApprovalReview {
  namespace: string;
  name?: string;
}

export interface AlertSink {
  /** Logs the alert and queues it for the webhook; returns at once and never throws. */
  send(alert: Alert): void;
  /** Tries to deliver what is queued (bounded wait), then stops. */
  close(): Promise<void>;
}
