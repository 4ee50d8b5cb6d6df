export { type AlertSinkOptions, createAlertSink } from './sink.ts';
export { escapeMrkdwn, type SlackPayload, slackPayload } from './slack.ts';
export type { Alert, AlertKind, AlertSink } from './types.ts';
