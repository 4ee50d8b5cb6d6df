// The HTTP event payloads this gateway writes (the contract is recording/http-events.ts).
export type {
  HttpRequestEvent,
  HttpResponseEvent,
  KubeRequestAttributes,
  WebSocketMessage,
} from '../../recording/index.ts';

import type { HttpRequestEvent } from '../../recording/index.ts';

export type HttpBody = NonNullable<HttpRequestEvent['body']>;
