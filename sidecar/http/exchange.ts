// One request/response through an HTTP or Kubernetes target: parse the target, authenticate,
// decide (guardrails, approval), forward with the sidecar's credential, stream or mask the
// response, and record both halves. Bodies stream both ways; only a response that must be masked
// is held, up to maskCapBytes.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { Readable, type Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { Dispatcher } from 'undici';
import { kubeRequestHeaders, kubeStatus, mustMaskSecrets, objectRefs } from '../kube/exchange.ts';
import { type KubeRequestInfo, kubeRequestInfo, recordedAttributes } from '../kube/request-info.ts';
import { maskSecretRequestText, maskSecrets } from '../kube/secrets.ts';
import { BodyCapture, captureTransform, requestTap } from './body-capture.ts';
import type { HttpRuntime } from './context.ts';
import type { GuardBody } from './guard.ts';
import {
  downstreamResponseHeaders,
  presentedToken,
  redactHeaders,
  upstreamRequestHeaders,
} from './headers.ts';
import { isJson, isText } from './json-mask.ts';
import { parseRequestTarget } from './path.ts';
import type { HttpBody } from './record.ts';
import { Scrubber, scrubBuffer, secretValues } from './scrub.ts';
import { type HttpSession, IdentityRefused } from './session.ts';
import { WatchRelay } from './watch.ts';

/** Responses up to this size with a Content-Length are read whole and sent in one write. */
const SMALL_BODY_BYTES = 64 * 1024;

export async function handleExchange(
  session: HttpSession,
  rt: HttpRuntime,
  req: IncomingMessage,
  res: ServerResponse,
): Promise<void> {
  const finished = session.begin();
  try {
    await exchange(session, rt, req, res);
  } catch (err) {
    session.logger.error({ err }, 'http exchange failed');
    if (!res.headersSent) refuse(rt, res, 502, 'chaperone: the exchange failed');
    else res.destroy();
  } finally {
    finished();
  }
}

function refuse(rt: HttpRuntime, res: ServerResponse, status: number, message: string, close = false): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const body = rt.kube ? JSON.stringify(kubeStatus(status, message)) : `${message}\n`;
  res.writeHead(status, {
    'content-type': rt.kube ? 'application/json' : 'text/plain; charset=utf-8',
    'content-length': Buffer.byteLength(body),
    ...(close ? { connection: 'close' } : {}),
  });
  res.end(body);
}

function hasBody(req: IncomingMessage): boolean {
  const cl = req.headers['content-length'];
  return req.headers['transfer-encoding'] !== undefined || (cl !== undefined && cl !== '0');
}

function mime(headers: Record<string, string | string[] | undefined>): string | undefined {
  const v = headers['content-type'];
  return typeof v === 'string' ? v : undefined;
}

async function exchange(session: HttpSession, rt: HttpRuntime, req: IncomingMessage, res: ServerResponse) {
  const startedAt = performance.now();
  const method = req.method ?? 'GET';
  const parsed = parseRequestTarget(req.url ?? '');
  if (!parsed.ok) {
    // Before identity: nothing is recorded for a request the sidecar cannot even read.
    refuse(rt, res, 400, `chaperone: request refused: ${parsed.problem}`, true);
    return;
  }
  const target = parsed.target;
  try {
    await session.authenticate(rt, presentedToken(req.headers, rt.http.identityHeader));
  } catch (err) {
    if (err instanceof IdentityRefused) {
      refuse(rt, res, err.status, err.message, true);
      return;
    }
    throw err;
  }
  const rec = session.rec!;
  const id = session.nextExchange();
  const info = rt.kube ? kubeRequestInfo(method, target.path, target.query) : undefined;
  const url = target.query ? `${target.rawPath}?${target.query}` : target.rawPath;
  const requestEvent: Record<string, unknown> = {
    exchange: id,
    method,
    url,
    httpVersion: `HTTP/${req.httpVersion}`,
    headers: redactHeaders(req.headers, [rt.http.identityHeader]),
    ...(info ? { kubernetes: recordedAttributes(info) } : {}),
  };
  const summary = info
    ? `${info.verb} ${info.resource ?? info.path}${info.subresource ? `/${info.subresource}` : ''}${info.namespace ? ` -n ${info.namespace}` : ''}${info.name ? ` ${info.name}` : ''}`
    : `${method} ${target.path}`;

  const plan = upstreamRequestHeaders(req.headers, {
    identityHeader: rt.http.identityHeader,
    ...(rt.kube ? { refusedPrefixes: ['impersonate-'] } : {}),
  });
  const detail = { method, path: target.path, ...(info ? { kubernetes: recordedAttributes(info) } : {}) };
  let refusal: string | undefined;
  let readBody: GuardRead | undefined;
  if (plan.refused) {
    refusal = `chaperone: request refused: ${plan.refused}`;
    session.refuse('chaperone-headers', refusal, summary);
  } else {
    // A rule with jsonBody conditions: the body is read (up to maskCapBytes) before the decision.
    let guardBody: GuardBody | undefined;
    if (hasBody(req) && rt.guard.needsBody(method, target.path, info)) {
      readBody = await readForGuard(req, rt.http.maskCapBytes);
      guardBody = readBody.rest ? 'unreadable' : jsonForGuard(Buffer.concat(readBody.chunks));
    }
    const decision = rt.guard.decide(method, target.path, info, guardBody);
    // requireApproval: the request (and its body) waits unread until a reviewer decides.
    refusal = await session.decide(decision, summary, detail);
  }
  if (refusal !== undefined) {
    rec.add('http.request', 'client', requestEvent, summary);
    rec.add('http.response', 'server', { exchange: id, status: 403, headers: {}, error: refusal });
    // A body the guard left unread: the connection closes after the answer instead of reading it.
    refuse(rt, res, 403, refusal, readBody?.rest !== undefined);
    return;
  }

  // Upstream request headers: the agent's (cleaned), the upstream's Host, the sidecar's credential.
  const headers: Record<string, string | string[]> = { ...plan.upstream, host: rt.upstream.host };
  const cl = req.headers['content-length'];
  if (cl !== undefined && req.headers['transfer-encoding'] === undefined) headers['content-length'] = cl;
  let credential: Record<string, string>;
  try {
    credential = await rt.upstream.credentialHeaders();
  } catch (err) {
    session.logger.error({ err }, 'upstream credentials unavailable');
    rec.add('http.response', 'server', {
      exchange: id,
      status: 502,
      headers: {},
      error: (err as Error).message,
    });
    refuse(rt, res, 502, `chaperone: upstream credentials for target ${rt.target.name} are unavailable`);
    return;
  }
  Object.assign(headers, credential);
  const secretsMasked = rt.kube && info !== undefined && mustMaskSecrets(rt, info);
  if (rt.kube && info)
    Object.assign(headers, kubeRequestHeaders(rt, session, info, req.headers, secretsMasked));
  // Masking needs plain bodies: ask for no content coding.
  delete headers['accept-encoding'];

  const withBody = hasBody(req);
  const reqCapture = new BodyCapture(rt.http.bodyCapBytes);
  let requestRecorded: Promise<void>;
  const recordRequest = () => {
    const event = withBody
      ? { ...requestEvent, body: requestBody(reqCapture.summary(mime(req.headers)), secretsMasked) }
      : requestEvent;
    // Strict: wait until the event is durable. Batched: the event is in order once added; its
    // append settles with the next batch and the recording channel reports a failure.
    if (rt.strictRecording) return rec.durable('http.request', 'client', event, summary);
    rec.add('http.request', 'client', event, summary);
    return Promise.resolve();
  };
  const abort = new AbortController();
  res.once('close', () => {
    if (!res.writableFinished) abort.abort(new Error('agent went away'));
  });
  let body: Readable | null = null;
  if (withBody) {
    // Strict recording: the body streams upstream, but its last chunk only once the request event
    // (with the whole body's length and hash) is durable.
    const t = requestTap(reqCapture, recordRequest, rt.strictRecording);
    req.once('error', (err) => t.tap.destroy(err));
    body = (readBody ? replay(readBody) : req).pipe(t.tap);
    requestRecorded = t.recorded;
  } else {
    requestRecorded = recordRequest();
    // Strict recording: a request without a body goes upstream only once its event is durable.
    if (rt.strictRecording) await requestRecorded;
  }

  let upstream: Dispatcher.ResponseData;
  try {
    upstream = await rt.upstream.pool.request({
      method: method as Dispatcher.HttpMethod,
      path: url,
      headers,
      body,
      signal: abort.signal,
    });
  } catch (err) {
    const message = `chaperone: upstream ${rt.upstream.origin} failed: ${(err as Error).message}`;
    session.logger.warn({ err }, 'upstream request failed');
    await requestRecorded.catch(() => undefined);
    rec.add('http.response', 'server', { exchange: id, status: 502, headers: {}, error: message });
    refuse(rt, res, 502, message);
    return;
  }
  const headersAt = performance.now();
  await requestRecorded;
  const respHeaders = downstreamResponseHeaders(upstream.headers);
  const contentType = mime(upstream.headers);
  const contentEncoding = upstream.headers['content-encoding'];
  const watch = info?.verb === 'watch' || (info !== undefined && isWatchStream(upstream.headers));
  const needsMask =
    secretsMasked || (rt.masker.active && (isJson(contentType) || isText(contentType) || watch));
  const respCapture = new BodyCapture(rt.http.bodyCapBytes);
  // The upstream reflected the sidecar's credential: overwritten before the agent or the recording sees it.
  const secrets = secretValues(credential);
  const scrubbed = () =>
    rec.add('policy.masked', 'internal', { rule: 'upstream-credential', fields: ['body'] });
  const responseEvent = (extra: Record<string, unknown>) => ({
    exchange: id,
    status: upstream.statusCode,
    headers: redactHeaders(upstream.headers as Record<string, string | string[] | undefined>),
    timings: { waitMs: round(headersAt - startedAt), receiveMs: round(performance.now() - headersAt) },
    ...extra,
  });
  const failMasking = async (why: string) => {
    upstream.body.destroy();
    const message = `chaperone: response refused: ${why}`;
    rec.add('http.response', 'server', { ...responseEvent({}), status: 502, error: message });
    refuse(rt, res, 502, message);
  };

  if (needsMask && contentEncoding !== undefined && contentEncoding !== 'identity') {
    await failMasking(`a ${contentEncoding}-encoded body cannot be masked`);
    return;
  }
  // A watch is relayed (and recorded) event by event, masked or not.
  if (watch && (needsMask || isJson(contentType))) {
    if (!isJson(contentType)) {
      await failMasking(`a ${contentType ?? 'untyped'} watch stream cannot be masked`);
      return;
    }
    const relay = new WatchRelay(session, rt, id, secretsMasked, info);
    delete respHeaders['content-length'];
    res.writeHead(upstream.statusCode, respHeaders);
    const scrub = new Scrubber(secrets);
    await streamBody(upstream.body, [scrub, relay, captureTransform(respCapture)], res, session);
    if (scrub.hits > 0) scrubbed();
    rec.add(
      'http.response',
      'server',
      responseEvent({ body: respCapture.summary(contentType, relay.maskedPaths()) }),
    );
    return;
  }
  if (needsMask) {
    if (secretsMasked && !isJson(contentType) && upstream.statusCode < 400) {
      await failMasking(`Secret data in ${contentType ?? 'an untyped body'} cannot be masked`);
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of upstream.body) {
      size += (chunk as Buffer).length;
      if (size > rt.http.maskCapBytes) {
        await failMasking(`the body exceeds maskCapBytes (${rt.http.maskCapBytes}) and needs masking`);
        return;
      }
      chunks.push(chunk as Buffer);
    }
    let out: Buffer = Buffer.concat(chunks);
    const masked: string[] = [];
    let refs: ReturnType<typeof objectRefs> | undefined;
    if (isJson(contentType)) {
      let doc: unknown;
      try {
        doc = JSON.parse(out.toString('utf8'));
      } catch {
        doc = undefined;
      }
      if (doc !== undefined && doc !== null && typeof doc === 'object') {
        if (secretsMasked) masked.push(...maskSecrets(doc, info?.resource === 'secrets'));
        if (rt.masker.active) masked.push(...rt.masker.maskJson(doc));
        if (masked.length > 0) out = Buffer.from(JSON.stringify(doc));
        if (rt.kube) refs = objectRefs(doc);
      } else if (secretsMasked && upstream.statusCode < 400) {
        await failMasking('a Secret response that is not JSON');
        return;
      } else if (rt.masker.active) {
        const r = rt.masker.maskBody(out, 'text/plain');
        if (r) {
          out = r.body;
          masked.push(...r.masked);
        }
      }
    } else {
      const r = rt.masker.maskBody(out, contentType);
      if (r) {
        out = r.body;
        masked.push(...r.masked);
      }
    }
    if (masked.length > 0)
      rec.add('policy.masked', 'internal', {
        rule: secretsMasked ? 'secret-data' : 'masking',
        fields: masked,
        count: masked.length,
      });
    if (scrubBuffer(out, secrets) > 0) scrubbed();
    respCapture.update(out);
    respHeaders['content-length'] = String(out.length);
    res.writeHead(upstream.statusCode, respHeaders);
    res.end(out);
    rec.add(
      'http.response',
      'server',
      responseEvent({
        body: respCapture.summary(contentType, masked),
        ...(refs ? { kubernetes: refs } : {}),
      }),
    );
    return;
  }
  let done = true;
  const length = Number(upstream.headers['content-length'] ?? Number.NaN);
  if (length <= SMALL_BODY_BYTES) {
    // A small body of known length: read whole, then headers and body leave in one write (no
    // stream pipeline per exchange; see "HTTP and Kubernetes API targets" in docs/benchmarks.md).
    let out: Buffer;
    try {
      out = Buffer.from(await upstream.body.arrayBuffer());
    } catch (err) {
      session.logger.debug({ err }, 'response body cut by the upstream');
      out = Buffer.alloc(0);
      done = false;
    }
    if (!done) res.destroy();
    else {
      if (scrubBuffer(out, secrets) > 0) scrubbed();
      respCapture.update(out);
      res.writeHead(upstream.statusCode, respHeaders);
      res.end(out);
    }
  } else {
    res.writeHead(upstream.statusCode, respHeaders);
    const scrub = new Scrubber(secrets);
    done = await streamBody(upstream.body, [scrub, captureTransform(respCapture)], res, session);
    if (scrub.hits > 0) scrubbed();
  }
  const bodySummary = respCapture.summary(contentType);
  let refs: ReturnType<typeof objectRefs> | undefined;
  if (rt.kube && bodySummary.text && !bodySummary.truncated && isJson(contentType)) {
    try {
      refs = objectRefs(JSON.parse(bodySummary.text));
    } catch {
      refs = undefined;
    }
  }
  rec.add(
    'http.response',
    'server',
    responseEvent({
      body: bodySummary,
      ...(refs ? { kubernetes: refs } : {}),
      ...(done ? {} : { error: 'stream cut' }),
    }),
  );
}

interface GuardRead {
  chunks: Buffer[];
  /** The rest of the body when it is longer than the cap (the guard did not see it whole). */
  rest: AsyncIterator<Buffer> | undefined;
}

/** Reads a request body for the guard, up to `cap` bytes (the rest stays unread). */
async function readForGuard(req: IncomingMessage, cap: number): Promise<GuardRead> {
  const it = req[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
  const chunks: Buffer[] = [];
  let size = 0;
  for (;;) {
    const r = await it.next();
    if (r.done) return { chunks, rest: undefined };
    chunks.push(r.value);
    size += r.value.length;
    if (size > cap) return { chunks, rest: it };
  }
}

/** The body the guard read, then whatever it left, as one stream. */
function replay(read: GuardRead): Readable {
  return Readable.from(
    (async function* () {
      yield* read.chunks;
      if (read.rest) for (let r = await read.rest.next(); !r.done; r = await read.rest.next()) yield r.value;
    })(),
  );
}

function jsonForGuard(body: Buffer): GuardBody {
  try {
    return { json: JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(body)) };
  } catch {
    return 'unreadable';
  }
}

/** A request body for the recording: Secret values masked when the policy does not allow them. */
function requestBody(body: HttpBody, secrets: boolean): HttpBody {
  if (!secrets || (body.text === undefined && body.base64 === undefined)) return body;
  const { text: _t, base64: _b, ...rest } = body;
  const r =
    body.text !== undefined && !body.truncated ? maskSecretRequestText(body.text) : { masked: ['body'] };
  return { ...rest, ...(r.text !== undefined ? { text: r.text } : {}), masked: r.masked };
}

function isWatchStream(headers: Record<string, string | string[] | undefined>): boolean {
  const ct = headers['content-type'];
  return typeof ct === 'string' && /watch=true|stream=watch/.test(ct);
}

function round(ms: number): number {
  return Math.round(ms * 1000) / 1000;
}

/** Streams upstream → transforms → agent; false when either side cut the stream. */
async function streamBody(
  src: Readable,
  transforms: Transform[],
  res: ServerResponse,
  session: HttpSession,
): Promise<boolean> {
  try {
    await pipeline([src, ...transforms, res]);
    return true;
  } catch (err) {
    session.logger.debug({ err }, 'response stream ended early');
    return false;
  }
}

export type { KubeRequestInfo };
