// Approval alerts a reviewer can act on: with the Kubernetes approval backend, each alert of a
// statement awaiting approval names where it is decided, so the chat message carries the exact
// `kubectl chaperone approve|deny` commands (slack.ts renders them).
import type { AlertSink } from './types.ts';

export function withApprovalReview(sink: AlertSink, namespace: string | undefined): AlertSink {
  if (!namespace) return sink;
  return {
    send: (alert) =>
      sink.send(alert.kind === 'approval' && !alert.review ? { ...alert, review: { namespace } } : alert),
    close: () => sink.close(),
  };
}
