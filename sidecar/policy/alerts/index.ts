export { withApprovalReview } from './review.ts';
export { type AlertSinkOptions, createAlertSink } from './sink.ts';
export { escapeMrkdwn, reviewCommands, type SlackPayload, slackPayload } from './slack.ts';
export type { Alert, AlertKind, AlertSink, ApprovalReview } from './types.ts';
