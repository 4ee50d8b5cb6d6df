// WebSocket upgrades through an HTTP or Kubernetes target: the same target parsing, identity,
// guardrails and approvals as any request, then the upstream's 101 relayed and the bytes copied
// both ways unchanged while a FrameReader records each message. Compression extensions are not
// offered upstream (the recording must read the frames). Kubernetes exec/attach streams
// (v4/v5.channel.k8s.io) are also recorded as a terminal session: stdin, stdout, stderr, resize
// and the exit status, which the asciicast exporter and the player read.
import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { kubeRequestHeaders, kubeStatus } from '../kube/exchange.ts';
import { type ForwardedStream, PortForwardReader } from '../kube/portforward.ts';
import { ChannelPortForwardReader, requestedPorts } from '../kube/portforward-channels.ts';
import { kubeRequestInfo, recordedAttributes } from '../kube/request-info.ts';
import type { HttpRuntime } from './context.ts';
import { presentedToken, redactHeaders, upstreamRequestHeaders } from './headers.ts';
import { parseRequestTarget } from './path.ts';
import { type HttpSession, IdentityRefused } from './session.ts';
import { type Frame, FrameReader } from './ws-frames.ts';

function reply(socket: Socket, rt: HttpRuntime, status: number, message: string): void {
  const body = rt.kube ? JSON.stringify(kubeStatus(status, message)) : `${message}\n`;
  const type = rt.kube ? 'application/json' : 'text/plain; charset=utf-8';
  socket.end(
    `HTTP/1.1 ${status} ${status === 403 ? 'Forbidden' : status === 401 ? 'Unauthorized' : status === 400 ? 'Bad Request' : 'Bad Gateway'}\r\ncontent-type: ${type}\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`,
  );
}

const STREAMS = ['stdin', 'stdout', 'stderr'] as const;

export async function handleUpgrade(
  session: HttpSession,
  rt: HttpRuntime,
  req: IncomingMessage,
  socket: Socket,
  head: Buffer,
): Promise<void> {
  const finished = session.begin();
  try {
    await upgrade(session, rt, req, socket, head);
  } catch (err) {
    session.logger.error({ err }, 'websocket upgrade failed');
    if (!socket.destroyed) reply(socket, rt, 502, 'chaperone: the upgrade failed');
  } finally {
    finished();
  }
}

async function upgrade(
  session: HttpSession,
  rt: HttpRuntime,
  req: IncomingMessage,
  socket: Socket,
  head: Buffer,
) {
  if ((req.headers.upgrade ?? '').toLowerCase() !== 'websocket') {
    // kubectl falls back to SPDY when its WebSocket upgrade is refused: it hears the refusal again
    // (not recorded twice) instead of a message about SPDY.
    const earlier = await earlierRefusal(session, rt, req);
    if (earlier) reply(socket, rt, 403, earlier);
    else reply(socket, rt, 400, `chaperone: upgrade to ${req.headers.upgrade} is refused (only websocket)`);
    return;
  }
  const parsed = parseRequestTarget(req.url ?? '');
  if (!parsed.ok) {
    reply(socket, rt, 400, `chaperone: request refused: ${parsed.problem}`);
    return;
  }
  const t = parsed.target;
  try {
    await session.authenticate(rt, presentedToken(req.headers, rt.http.identityHeader));
  } catch (err) {
    if (err instanceof IdentityRefused) {
      reply(socket, rt, err.status, err.message);
      return;
    }
    throw err;
  }
  const rec = session.rec!;
  const id = session.nextExchange();
  const method = req.method ?? 'GET';
  const info = rt.kube ? kubeRequestInfo(method, t.path, t.query) : undefined;
  const url = t.query ? `${t.rawPath}?${t.query}` : t.rawPath;
  const summary = info
    ? `${info.verb} ${info.resource ?? info.path}${info.subresource ? `/${info.subresource}` : ''}${info.namespace ? ` -n ${info.namespace}` : ''}${info.name ? ` ${info.name}` : ''}`
    : `${method} ${t.path} (websocket)`;
  rec.add(
    'http.request',
    'client',
    {
      exchange: id,
      method,
      url,
      httpVersion: `HTTP/${req.httpVersion}`,
      headers: redactHeaders(req.headers, [rt.http.identityHeader]),
      ...(info ? { kubernetes: recordedAttributes(info) } : {}),
    },
    summary,
  );
  const plan = upstreamRequestHeaders(req.headers, {
    identityHeader: rt.http.identityHeader,
    ...(rt.kube ? { refusedPrefixes: ['impersonate-'] } : {}),
  });
  let refusal: string | undefined;
  if (plan.refused) {
    refusal = `chaperone: request refused: ${plan.refused}`;
    session.refuse('chaperone-headers', refusal, summary);
  } else {
    const detail = {
      method,
      path: t.path,
      websocket: true,
      ...(info ? { kubernetes: recordedAttributes(info) } : {}),
    };
    refusal = await session.decide(rt.guard.decide(method, t.path, info), summary, detail);
  }
  if (refusal !== undefined) {
    rec.add('http.response', 'server', { exchange: id, status: 403, headers: {}, error: refusal });
    rememberRefusal(session, rt, url, refusal);
    reply(socket, rt, 403, refusal);
    return;
  }
  const headers: Record<string, string | string[]> = { ...plan.upstream, host: rt.upstream.host };
  for (const h of ['sec-websocket-key', 'sec-websocket-version', 'sec-websocket-protocol']) {
    const v = req.headers[h];
    if (typeof v === 'string') headers[h] = v;
  }
  delete headers['sec-websocket-extensions'];
  Object.assign(headers, await rt.upstream.credentialHeaders());
  if (rt.kube && info) Object.assign(headers, kubeRequestHeaders(rt, session, info, req.headers, false));
  let up: { headers: Record<string, string | string[] | undefined>; socket: Duplex };
  try {
    up = (await rt.upstream.upgradePool.upgrade({
      path: url,
      method: 'GET',
      headers,
      protocol: 'websocket',
    })) as typeof up;
  } catch (err) {
    const message = `chaperone: upstream upgrade failed: ${(err as Error).message}`;
    rec.add('http.response', 'server', { exchange: id, status: 502, headers: {}, error: message });
    reply(socket, rt, 502, message);
    return;
  }
  const respHeaders = up.headers;
  rec.add('http.response', 'server', { exchange: id, status: 101, headers: redactHeaders(respHeaders) });
  let lines = 'HTTP/1.1 101 Switching Protocols\r\n';
  for (const [k, v] of Object.entries(respHeaders)) {
    if (v === undefined || k === 'sec-websocket-extensions') continue;
    for (const one of Array.isArray(v) ? v : [v]) lines += `${k}: ${one}\r\n`;
  }
  socket.write(`${lines}\r\n`);

  const subprotocol = String(respHeaders['sec-websocket-protocol'] ?? '');
  const terminal =
    info !== undefined &&
    (info.subresource === 'exec' || info.subresource === 'attach') &&
    /^v[45]\.channel\.k8s\.io$/.test(subprotocol);
  if (terminal) {
    const q = new URLSearchParams(t.query);
    const command = q.getAll('command').join(' ');
    rec.add(
      'terminal.open',
      'client',
      {
        channel: id,
        mode: info.subresource === 'exec' ? 'exec' : 'attach',
        ...(command ? { command } : {}),
        ...(q.get('tty') === 'true' ? { pty: { cols: 0, rows: 0 } } : {}),
      },
      `${info.subresource} ${info.namespace}/${info.name}${command ? `: ${command}` : ''}`,
    );
  }
  // Port-forward: each forwarded stream's port and bytes each way, recorded when it ends. kubectl
  // tunnels SPDY/3.1 in the WebSocket; client libraries speak the plain channel protocol.
  const forwarded = (s: ForwardedStream) =>
    rec.add(
      'http.portforward',
      'internal',
      {
        exchange: id,
        streamId: s.streamId,
        ...(s.port !== undefined ? { port: s.port } : {}),
        ...(s.streamType !== undefined ? { streamType: s.streamType } : {}),
        ...(s.requestId !== undefined ? { requestId: s.requestId } : {}),
        bytesToPod: s.bytesToPod,
        bytesFromPod: s.bytesFromPod,
        ...(s.reset ? { reset: true } : {}),
      },
      `port-forward ${info?.namespace}/${info?.name}:${s.port ?? '?'} ${s.streamType ?? ''}`.trim(),
    );
  const portForward = info?.subresource === 'portforward';
  const pf =
    portForward && /^SPDY\/3\.1\+portforward\.k8s\.io$/i.test(subprotocol)
      ? new PortForwardReader(forwarded)
      : undefined;
  const channels =
    portForward && /^v[45]\.channel\.k8s\.io$/.test(subprotocol)
      ? new ChannelPortForwardReader(requestedPorts(t.query), forwarded)
      : undefined;
  const cap = rt.http.bodyCapBytes;
  const record = (direction: 'client' | 'server') => (f: Frame) => {
    if (terminal && (f.opcode === 'binary' || f.opcode === 'text') && f.first && f.data.length > 0) {
      recordTerminal(session, id, direction, f.data);
      return;
    }
    channels?.frame(direction, f);
    rec.add('http.websocket', direction, {
      exchange: id,
      opcode: f.opcode,
      data: f.data.toString('base64'),
      bytes: f.bytes,
    });
  };
  const fromAgent = new FrameReader(cap, record('client'), pf ? (p) => pf.fromClient.push(p) : undefined);
  const fromUpstream = new FrameReader(cap, record('server'), pf ? (p) => pf.fromServer.push(p) : undefined);
  const upSocket = up.socket;
  socket.on('data', (c: Buffer) => fromAgent.push(c));
  upSocket.on('data', (c: Buffer) => fromUpstream.push(c));
  if (head.length > 0) {
    fromAgent.push(head);
    upSocket.write(head);
  }
  socket.pipe(upSocket);
  upSocket.pipe(socket);
  await new Promise<void>((resolve) => {
    let open = 2;
    const done = () => {
      if (--open === 0) resolve();
    };
    const close = () => {
      socket.destroy();
      upSocket.destroy();
      pf?.close();
      channels?.close();
    };
    socket.once('close', () => {
      close();
      done();
    });
    upSocket.once('close', () => {
      close();
      done();
    });
    socket.once('error', close);
    upSocket.once('error', close);
  });
}

/** WebSocket upgrades refused in the last seconds, by target, agent and URL (kubectl's SPDY fallback). */
const refusals = new Map<string, { message: string; at: number }>();
const REFUSAL_TTL_MS = 30_000;

function rememberRefusal(session: HttpSession, rt: HttpRuntime, url: string, message: string): void {
  if (refusals.size >= 1000) refusals.delete(refusals.keys().next().value!);
  refusals.set(`${rt.target.name}\n${session.subject}\n${url}`, { message, at: Date.now() });
}

/** The refusal of this agent's WebSocket upgrade of the same URL, if one was just made. */
async function earlierRefusal(session: HttpSession, rt: HttpRuntime, req: IncomingMessage) {
  const parsed = parseRequestTarget(req.url ?? '');
  if (!parsed.ok || refusals.size === 0) return undefined;
  try {
    await session.authenticate(rt, presentedToken(req.headers, rt.http.identityHeader));
  } catch {
    return undefined;
  }
  const t = parsed.target;
  const key = `${rt.target.name}\n${session.subject}\n${t.query ? `${t.rawPath}?${t.query}` : t.rawPath}`;
  const r = refusals.get(key);
  if (!r || Date.now() - r.at > REFUSAL_TTL_MS) return undefined;
  refusals.delete(key);
  return r.message;
}

function recordTerminal(session: HttpSession, channel: string, direction: 'client' | 'server', data: Buffer) {
  const ev = terminalEvent(channel, direction, data);
  if (ev) session.rec?.add(ev.kind, ev.direction, ev.payload);
}

/**
 * One message of a Kubernetes exec/attach stream (v4/v5.channel.k8s.io: the first byte names the
 * stream) as a terminal event: 0 stdin, 1 stdout, 2 stderr, 3 the error channel (a metav1.Status:
 * Success, or NonZeroExitCode with the code in its causes), 4 a resize ({"Width","Height"}).
 */
export function terminalEvent(
  channel: string,
  direction: 'client' | 'server',
  data: Buffer,
): { kind: string; direction: 'client' | 'server'; payload: Record<string, unknown> } | undefined {
  const stream = data[0]!;
  const payload = data.subarray(1);
  if (stream <= 2) {
    if (payload.length === 0) return undefined;
    return {
      kind: stream === 0 ? 'terminal.input' : 'terminal.output',
      direction,
      payload: { channel, stream: STREAMS[stream], data: payload.toString('base64') },
    };
  }
  if (stream === 3) {
    try {
      const status = JSON.parse(payload.toString('utf8')) as {
        status?: string;
        message?: string;
        details?: { causes?: { reason?: string; message?: string }[] };
      };
      const exit = status.details?.causes?.find((c) => c.reason === 'ExitCode')?.message;
      const code = status.status === 'Success' ? 0 : exit !== undefined ? Number(exit) : undefined;
      return {
        kind: 'terminal.exit',
        direction: 'server',
        payload: {
          channel,
          ...(code !== undefined && Number.isInteger(code) ? { code } : {}),
          ...(code === undefined && status.message ? { signal: status.message.slice(0, 200) } : {}),
        },
      };
    } catch {
      return { kind: 'terminal.exit', direction: 'server', payload: { channel } };
    }
  }
  if (stream === 4) {
    try {
      const size = JSON.parse(payload.toString('utf8')) as { Width?: number; Height?: number };
      return {
        kind: 'terminal.resize',
        direction: 'client',
        payload: { channel, cols: size.Width ?? 0, rows: size.Height ?? 0 },
      };
    } catch {
      // A resize that is not JSON is relayed (the kubelet refuses it) but not recorded as a size.
      return undefined;
    }
  }
  return undefined;
}
