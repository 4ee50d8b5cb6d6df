// The web viewer: a fastify app with server-rendered pages, read-only by construction (its only
// routes that accept a body are sign-in and sign-out, and its store has no write method).
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import { SessionIdSchema, SessionNotFoundError, VerificationError } from '../../recording/index.ts';
import { CliError } from '../errors.ts';
import { asciicastLines } from '../export/asciicast.ts';
import { parseTime } from '../format.ts';
import { type Asset, loadAssets } from './assets.ts';
import type { Gate, Viewer } from './auth.ts';
import { type FilterInput, listPage } from './pages/list.ts';
import { loginPage } from './pages/login.ts';
import { notFoundPage, sessionPage } from './pages/session.ts';
import { readSessionWindow } from './session-window.ts';
import type { SessionSource, ViewerFilter } from './source.ts';

export interface ViewerOptions {
  source: SessionSource;
  gate: Gate;
  /** Sessions per list page (default 50) and events per timeline page (default 500). */
  pageSize?: number;
  eventsPerPage?: number;
  logger?: boolean;
  /** Mark the session cookie Secure even on plain HTTP (behind a TLS-terminating proxy). */
  secureCookie?: boolean;
}

export const COOKIE = 'chaperone_viewer';

/** Content Security Policy: our own scripts only (the player needs WebAssembly), no inline code. */
export const CSP = [
  "default-src 'none'",
  "script-src 'self' 'wasm-unsafe-eval'",
  "style-src 'self'",
  "img-src 'self' data:",
  "font-src 'self'",
  "connect-src 'self'",
  "form-action 'self'",
  "frame-ancestors 'none'",
  "base-uri 'none'",
].join('; ');

/** The viewer's static files, or a CliError saying why they are not there. */
function viewerAssets(): Map<string, Asset> {
  try {
    return loadAssets();
  } catch (err) {
    throw new CliError(`the viewer's assets are not readable: ${(err as Error).message}`);
  }
}

function cookies(req: FastifyRequest): Record<string, string> {
  const out: Record<string, string> = {};
  for (const part of (req.headers.cookie ?? '').split(';')) {
    const i = part.indexOf('=');
    if (i > 0) out[part.slice(0, i).trim()] = part.slice(i + 1).trim();
  }
  return out;
}

/** A local path to go back to after sign-in; anything else becomes "/". */
function safeNext(v: unknown): string {
  return typeof v === 'string' && /^\/(?![/\\])[^\s\\]*$/.test(v) ? v : '/';
}

/**
 * Sign-in and sign-out only from our own pages. Browsers say where a request comes from in
 * Sec-Fetch-Site; with Referrer-Policy no-referrer their Origin on a form post is "null", so the
 * Origin header decides only when it names a real origin.
 */
function sameOrigin(req: FastifyRequest): boolean {
  const site = req.headers['sec-fetch-site'];
  if (site) return site === 'same-origin' || site === 'none';
  const origin = req.headers.origin;
  return !origin || origin === 'null' || origin === `${req.protocol}://${req.headers.host}`;
}

function filterOf(q: Record<string, string | undefined>): { input: FilterInput; filter: ViewerFilter } {
  const input: FilterInput = {};
  const filter: ViewerFilter = {};
  for (const k of ['namespace', 'pod', 'subject', 'target', 'since', 'until'] as const) {
    const v = q[k]?.trim();
    if (!v) continue;
    input[k] = v;
    if (k === 'since' || k === 'until') filter[k] = parseTime(v);
    else filter[k] = v;
  }
  return { input, filter };
}

const intParam = (v: unknown, max: number) => {
  const n = Number(v);
  return Number.isInteger(n) && n >= 0 ? Math.min(n, max) : 0;
};

export async function buildViewer(o: ViewerOptions): Promise<FastifyInstance> {
  const pageSize = o.pageSize ?? 50;
  const eventsPerPage = o.eventsPerPage ?? 500;
  const assets = viewerAssets();
  const app = Fastify({ logger: o.logger ?? false, bodyLimit: 16 * 1024 });
  const viewers = new WeakMap<FastifyRequest, Viewer>();

  app.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string' }, (_req, body, done) => {
    done(null, Object.fromEntries(new URLSearchParams(String(body))));
  });

  app.addHook('onRequest', async (_req, reply) => {
    reply.header('content-security-policy', CSP);
    reply.header('x-content-type-options', 'nosniff');
    reply.header('referrer-policy', 'no-referrer');
    reply.header('x-frame-options', 'DENY');
    reply.header('cross-origin-opener-policy', 'same-origin');
    reply.header('cross-origin-resource-policy', 'same-origin');
    reply.header('cache-control', 'no-store');
  });

  const html = (reply: FastifyReply, body: string, status = 200) =>
    reply.code(status).type('text/html; charset=utf-8').send(body);

  // Everything but health, assets and sign-in needs a viewer: a session cookie or a bearer token.
  const requireViewer = async (req: FastifyRequest, reply: FastifyReply) => {
    let viewer = o.gate.fromCookie(cookies(req)[COOKIE]);
    const auth = req.headers.authorization;
    if (!viewer && auth?.startsWith('Bearer ')) viewer = await o.gate.check(auth.slice(7).trim());
    if (viewer) {
      viewers.set(req, viewer);
      return;
    }
    if ((req.headers.accept ?? '').includes('text/html')) {
      return reply.redirect(`/login?next=${encodeURIComponent(req.url)}`, 303);
    }
    return reply.code(401).header('www-authenticate', 'Bearer realm="chaperone"').send('sign-in required\n');
  };
  const who = (req: FastifyRequest) => viewers.get(req)?.subject ?? '?';

  app.get('/healthz', async () => 'ok\n');

  app.get<{ Params: { name: string } }>('/assets/:name', async (req, reply) => {
    const a = assets.get(req.params.name);
    if (!a) return reply.code(404).send('not found\n');
    return reply.header('cache-control', 'public, max-age=3600').type(a.type).send(a.body);
  });

  app.get<{ Querystring: { next?: string; failed?: string } }>('/login', async (req, reply) =>
    html(
      reply,
      loginPage({
        mode: o.gate.config.mode,
        next: safeNext(req.query.next),
        failed: req.query.failed === '1',
        ...(o.gate.config.mode === 'oidc' ? { issuer: o.gate.config.issuer } : {}),
      }),
    ),
  );

  app.post<{ Body: { token?: string; next?: string } }>('/login', async (req, reply) => {
    if (!sameOrigin(req)) return reply.code(403).send('cross-site sign-in refused\n');
    const next = safeNext(req.body?.next);
    const viewer = req.body?.token ? await o.gate.check(req.body.token.trim()) : undefined;
    if (!viewer) return reply.redirect(`/login?failed=1&next=${encodeURIComponent(next)}`, 303);
    const maxAge = Math.max(0, viewer.exp - Math.floor(Date.now() / 1000));
    const secure = o.secureCookie || req.protocol === 'https' ? '; Secure' : '';
    reply.header(
      'set-cookie',
      `${COOKIE}=${o.gate.sessionCookie(viewer)}; Path=/; HttpOnly; SameSite=Strict; Max-Age=${maxAge}${secure}`,
    );
    return reply.redirect(next, 303);
  });

  app.post('/logout', async (req, reply) => {
    if (!sameOrigin(req)) return reply.code(403).send('cross-site sign-out refused\n');
    reply.header('set-cookie', `${COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0`);
    return reply.redirect('/login', 303);
  });

  app.get<{ Querystring: Record<string, string | undefined> }>(
    '/',
    { preHandler: requireViewer },
    async (req, reply) => {
      let parsed: ReturnType<typeof filterOf>;
      try {
        parsed = filterOf(req.query);
      } catch (err) {
        const input = { ...req.query } as FilterInput;
        return html(
          reply,
          listPage({
            viewer: who(req),
            filter: input,
            error: (err as Error).message,
            verification: () => undefined,
          }),
          400,
        );
      }
      const offset = intParam(req.query.offset, Number.MAX_SAFE_INTEGER);
      const result = await o.source.page(parsed.filter, offset, pageSize);
      // ?verify=1: verify every session of this page now (4 at a time), not only those opened.
      if (req.query.verify === '1') {
        const queue = [...result.sessions];
        const worker = async () => {
          for (let s = queue.shift(); s; s = queue.shift()) await o.source.verify(s.sessionId, s);
        };
        await Promise.all([worker(), worker(), worker(), worker()]);
      }
      return html(
        reply,
        listPage({
          viewer: who(req),
          filter: parsed.input,
          result,
          offset,
          verification: (s) => o.source.knownVerification(s),
        }),
      );
    },
  );

  app.get<{ Params: { id: string }; Querystring: { offset?: string } }>(
    '/sessions/:id',
    { preHandler: requireViewer },
    async (req, reply) => {
      const id = req.params.id;
      if (!SessionIdSchema.safeParse(id).success)
        return html(reply, notFoundPage(who(req), 'No such session.'), 404);
      const offset = intParam(req.query.offset, Number.MAX_SAFE_INTEGER);
      const { index, report, events, seen, channels, readError } = await readSessionWindow(
        o.source,
        id,
        offset,
        eventsPerPage,
      );
      if (!index && report.failure?.reason === 'session-not-found') {
        return html(reply, notFoundPage(who(req), `No session ${id} in this store.`), 404);
      }
      return html(
        reply,
        sessionPage({
          viewer: who(req),
          sessionId: id,
          ...(index ? { index } : {}),
          report,
          events,
          offset,
          limit: eventsPerPage,
          more: seen > offset + eventsPerPage,
          channels,
          ...(readError ? { readError } : {}),
        }),
      );
    },
  );

  app.get<{ Params: { id: string; channel: string } }>(
    '/sessions/:id/cast/:channel',
    { preHandler: requireViewer },
    async (req, reply) => {
      const { id, channel } = req.params;
      if (!SessionIdSchema.safeParse(id).success) return reply.code(404).send('no such session\n');
      const lines: string[] = [];
      try {
        for await (const l of asciicastLines(o.source.events(id), { channel })) lines.push(l);
      } catch (err) {
        if (err instanceof CliError || err instanceof SessionNotFoundError)
          return reply.code(404).send(`${err.message}\n`);
        if (err instanceof VerificationError)
          return reply.code(409).send(`verification failed: ${err.message}\n`);
        throw err;
      }
      return reply.type('application/x-asciicast; charset=utf-8').send(`${lines.join('\n')}\n`);
    },
  );

  return app;
}
