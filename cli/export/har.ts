// HAR 1.2 (http://www.softwareishard.com/blog/har-12-spec/): the HTTP exchanges of a session
// (HTTP and Kubernetes API targets) as browsers' HAR viewers read them. Streamed: an entry is
// written when its response arrives, so only exchanges in flight are held. Bodies are the
// recorded prefixes (masked as the agent saw them); `_chaperone` fields carry what HAR has no place
// for (body hashes and truncation, Kubernetes attributes, the watch events of a stream), and
// WebSocket messages use Chrome's `_webSocketMessages`.
import { HttpKinds, type RecordedEvent } from '../../recording/index.ts';
import { CliError } from '../errors.ts';
import type { Exporter, ExportOptions, ExportSink } from './exporter.ts';

type Headers = Record<string, string | string[]>;

interface Body {
  bytes: number;
  sha256: string;
  mimeType?: string;
  text?: string;
  base64?: string;
  truncated: boolean;
  masked?: string[];
}

interface Pending {
  startedMs: number;
  request: Record<string, unknown>;
  response?: Record<string, unknown>;
  ws: Record<string, unknown>[];
  watch: Record<string, unknown>[];
}

const headerList = (h: Headers | undefined) =>
  Object.entries(h ?? {}).flatMap(([name, v]) =>
    (Array.isArray(v) ? v : [v]).map((value) => ({ name, value })),
  );

function cookies(h: Headers | undefined, name: 'cookie' | 'set-cookie'): { name: string; value: string }[] {
  const v = h?.[name];
  if (v === undefined) return [];
  const list = Array.isArray(v) ? v : name === 'cookie' ? v.split(';') : [v];
  return list.map((c) => {
    const [n, ...rest] = c.split(';')[0]!.split('=');
    return { name: (n ?? '').trim(), value: rest.join('=').trim() };
  });
}

function bodyExtras(b: Body | undefined): Record<string, unknown> {
  if (!b) return {};
  return {
    _chaperone: {
      bytes: b.bytes,
      sha256: b.sha256,
      truncated: b.truncated,
      ...(b.masked ? { masked: b.masked } : {}),
    },
  };
}

function entry(p: Pending, origin: string): Record<string, unknown> {
  const req = p.request;
  const res = p.response ?? { status: 0, headers: {} };
  const reqBody = req.body as Body | undefined;
  const resBody = res.body as Body | undefined;
  const url = new URL(String(req.url), origin);
  const timings = (res.timings as { waitMs: number; receiveMs: number } | undefined) ?? {
    waitMs: -1,
    receiveMs: -1,
  };
  const total = Math.max(0, timings.waitMs) + Math.max(0, timings.receiveMs);
  const version = String(req.httpVersion ?? 'HTTP/1.1');
  const e: Record<string, unknown> = {
    startedDateTime: new Date(p.startedMs).toISOString(),
    time: total,
    request: {
      method: String(req.method),
      url: url.toString(),
      httpVersion: version,
      cookies: cookies(req.headers as Headers, 'cookie'),
      headers: headerList(req.headers as Headers),
      queryString: [...url.searchParams].map(([name, value]) => ({ name, value })),
      ...(reqBody
        ? {
            postData: {
              mimeType: reqBody.mimeType ?? '',
              text: reqBody.text ?? reqBody.base64 ?? '',
              ...bodyExtras(reqBody),
            },
          }
        : {}),
      headersSize: -1,
      bodySize: reqBody ? reqBody.bytes : 0,
    },
    response: {
      status: Number(res.status),
      statusText: String(res.statusText ?? ''),
      httpVersion: version,
      cookies: cookies(res.headers as Headers, 'set-cookie'),
      headers: headerList(res.headers as Headers),
      content: {
        size: resBody?.bytes ?? 0,
        mimeType: resBody?.mimeType ?? '',
        ...(resBody?.text !== undefined ? { text: resBody.text } : {}),
        ...(resBody?.base64 !== undefined ? { text: resBody.base64, encoding: 'base64' } : {}),
        ...bodyExtras(resBody),
      },
      redirectURL: '',
      headersSize: -1,
      bodySize: resBody?.bytes ?? -1,
      ...(res.error ? { _error: res.error } : {}),
    },
    cache: {},
    timings: { send: 0, wait: timings.waitMs, receive: timings.receiveMs },
  };
  const extra: Record<string, unknown> = {};
  if (req.kubernetes) extra.kubernetes = req.kubernetes;
  if (res.kubernetes) extra.objects = res.kubernetes;
  if (p.watch.length > 0) extra.watchEvents = p.watch;
  if (Object.keys(extra).length > 0) e._chaperone = extra;
  if (p.ws.length > 0) e._webSocketMessages = p.ws;
  return e;
}

/** The HAR document as text chunks: the log header, one chunk per entry, the closing brackets. */
export async function* harChunks(
  events: AsyncIterable<RecordedEvent>,
  creatorVersion = '0.1.0',
): AsyncGenerator<string> {
  let origin = 'http://upstream';
  const pending = new Map<string, Pending>();
  let first = true;
  let started = false;
  let comment = '';
  for await (const e of events) {
    const p = e.payload as Record<string, unknown>;
    if (e.kind === 'session.start') {
      const header = p as {
        sessionId: string;
        protocol: string;
        target: { name: string; host: string; port: number };
        identity: { subject?: string };
        labels?: Record<string, string>;
      };
      if (header.protocol !== 'http' && header.protocol !== 'kubernetes')
        throw new CliError(`session ${header.sessionId} is ${header.protocol}, not an HTTP session`);
      origin = header.labels?.['http.upstream'] ?? `https://${header.target.host}:${header.target.port}`;
      comment = `chaperone session ${header.sessionId}: ${header.protocol} target ${header.target.name}, agent ${header.identity.subject ?? '?'}`;
      yield `{"log":{"version":"1.2","creator":{"name":"chaperone","version":${JSON.stringify(creatorVersion)}},"comment":${JSON.stringify(comment)},"entries":[`;
      started = true;
      continue;
    }
    if (!started) continue;
    const id = String(p.exchange ?? '');
    switch (e.kind) {
      case HttpKinds.request:
        pending.set(id, { startedMs: e.wallMs, request: p, ws: [], watch: [] });
        break;
      case HttpKinds.response: {
        const x = pending.get(id);
        if (!x) break;
        x.response = p;
        // A WebSocket's messages come after its 101; the entry is written when the session ends.
        if (p.status === 101) break;
        pending.delete(id);
        yield `${first ? '' : ','}${JSON.stringify(entry(x, origin))}`;
        first = false;
        break;
      }
      case HttpKinds.websocket: {
        const x = pending.get(id);
        if (!x) break;
        const data = Buffer.from(String(p.data), 'base64');
        const text = p.opcode === 'text';
        x.ws.push({
          type: e.direction === 'client' ? 'send' : 'receive',
          time: e.wallMs / 1000,
          opcode:
            ({ text: 1, binary: 2, close: 8, ping: 9, pong: 10 } as Record<string, number>)[
              String(p.opcode)
            ] ?? 2,
          data: text ? data.toString('utf8') : data.toString('base64'),
        });
        break;
      }
      case HttpKinds.watch: {
        pending.get(id)?.watch.push({ time: new Date(e.wallMs).toISOString(), type: p.type, text: p.text });
        break;
      }
    }
  }
  if (!started) throw new CliError('no session.start in this session');
  // Exchanges without a response (the session ended first) and WebSockets, in request order.
  for (const x of pending.values()) {
    yield `${first ? '' : ','}${JSON.stringify(entry(x, origin))}`;
    first = false;
  }
  yield ']}}\n';
}

export const har: Exporter = {
  format: 'har',
  description: 'HAR 1.2 of an HTTP or Kubernetes API session, for browser HAR viewers',
  async write(events: AsyncIterable<RecordedEvent>, sink: ExportSink, _options: ExportOptions) {
    for await (const chunk of harChunks(events)) await sink.write(chunk);
  },
};
