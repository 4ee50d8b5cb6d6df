// HTTP exchanges (HTTP targets and the Kubernetes API target): the payloads the gateways write and
// the HAR exporter and viewer read. One exchange = one `http.request` and one `http.response` with
// the same `exchange` id; WebSocket messages after an upgrade carry that id too.
import { z } from 'zod';

export const HttpKinds = {
  request: 'http.request',
  response: 'http.response',
  websocket: 'http.websocket',
  /** One event of a Kubernetes watch (or another newline-delimited JSON stream), as relayed. */
  watch: 'http.watch',
  /** One forwarded stream of a Kubernetes port-forward (kubectl port-forward), once it is over. */
  portForward: 'http.portforward',
} as const;

/** Header values as sent; credentials and cookies are replaced by "[redacted]" before recording. */
export const HttpHeadersSchema = z.record(z.string(), z.union([z.string(), z.array(z.string())]));

export const HttpBodySchema = z.object({
  /** Length and SHA-256 (hex) of the whole body, even when only a prefix is kept. */
  bytes: z.number().int().min(0),
  sha256: z.string().regex(/^[0-9a-f]{64}$/),
  mimeType: z.string().optional(),
  /** The kept prefix (up to the policy's cap): text when it is UTF-8, else base64. */
  text: z.string().optional(),
  base64: z.string().optional(),
  truncated: z.boolean(),
  masked: z.array(z.string()).optional(),
});

/** What the Kubernetes target understood of a request (apiserver's RequestInfo terms). */
export const KubeRequestAttributesSchema = z.object({
  verb: z.string(),
  apiGroup: z.string(),
  apiVersion: z.string(),
  resource: z.string().optional(),
  subresource: z.string().optional(),
  namespace: z.string().optional(),
  name: z.string().optional(),
  fieldSelector: z.string().optional(),
  labelSelector: z.string().optional(),
});

export const HttpRequestSchema = z.object({
  exchange: z.string().min(1),
  method: z.string(),
  url: z.string(),
  httpVersion: z.string().optional(),
  headers: HttpHeadersSchema,
  body: HttpBodySchema.optional(),
  kubernetes: KubeRequestAttributesSchema.optional(),
});

export const HttpResponseSchema = z.object({
  exchange: z.string().min(1),
  status: z.number().int(),
  statusText: z.string().optional(),
  headers: HttpHeadersSchema,
  body: HttpBodySchema.optional(),
  /** ms from request start to response headers, and from headers to the body's end. */
  timings: z.object({ waitMs: z.number(), receiveMs: z.number() }).optional(),
  kubernetes: z
    .object({ uids: z.array(z.string()).optional(), resourceVersions: z.array(z.string()).optional() })
    .optional(),
  /** The sidecar answered itself (refused, upstream unreachable, masking impossible): why. */
  error: z.string().optional(),
});

export const WatchEventSchema = z.object({
  exchange: z.string().min(1),
  /** ADDED, MODIFIED, DELETED, BOOKMARK, ERROR. */
  type: z.string().optional(),
  /** The event's JSON as the agent received it (masked), up to the body cap. */
  text: z.string(),
  bytes: z.number().int().min(0),
  truncated: z.boolean().optional(),
});

export const WebSocketMessageSchema = z.object({
  exchange: z.string().min(1),
  opcode: z.enum(['text', 'binary', 'close', 'ping', 'pong']),
  /** base64 of the payload (after masking when the policy masks). */
  data: z.string(),
  bytes: z.number().int().min(0),
});

export const PortForwardStreamSchema = z.object({
  exchange: z.string().min(1),
  /** The SPDY stream id inside the WebSocket. */
  streamId: z.number().int().min(0),
  /** The pod's port, from the stream's headers. */
  port: z.number().int().min(1).max(65535).optional(),
  /** data (the forwarded bytes) or error (the kubelet's error text for the port). */
  streamType: z.string().optional(),
  /** kubectl's id of one forwarded TCP connection (its data and error streams share it). */
  requestId: z.string().optional(),
  bytesToPod: z.number().int().min(0),
  bytesFromPod: z.number().int().min(0),
  /** Ended by a reset instead of both sides finishing. */
  reset: z.boolean().optional(),
});

export type HttpRequestEvent = z.infer<typeof HttpRequestSchema>;
export type HttpResponseEvent = z.infer<typeof HttpResponseSchema>;
export type WebSocketMessage = z.infer<typeof WebSocketMessageSchema>;
export type WatchEvent = z.infer<typeof WatchEventSchema>;
export type KubeRequestAttributes = z.infer<typeof KubeRequestAttributesSchema>;

export const httpPayloadSchemas: Record<string, z.ZodType> = {
  [HttpKinds.request]: HttpRequestSchema,
  [HttpKinds.response]: HttpResponseSchema,
  [HttpKinds.websocket]: WebSocketMessageSchema,
  [HttpKinds.watch]: WatchEventSchema,
  [HttpKinds.portForward]: PortForwardStreamSchema,
};
