// One listener per HTTP or Kubernetes target: Node's HTTP/1.1 server on the loopback port (strict
// parser: conflicting Content-Length/Transfer-Encoding and other smuggling shapes are refused by
// llhttp before any handler runs), one HttpSession per agent connection, WebSocket upgrades to
// websocket.ts, every other upgrade (h2c) and CONNECT refused. The listener life (bind, drain) is
// the shared one; this file adds the agents' kubeconfig and the upstream pool's end.

import { mkdir, rename, writeFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerOptions } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { Socket } from 'node:net';
import { dirname } from 'node:path';
import { agentKubeconfig } from '../kube/kubeconfig.ts';
import { GatewayListener } from '../session/index.ts';
import type { GatewayServices, HttpRuntime } from './context.ts';
import { handleExchange } from './exchange.ts';
import { HttpSession } from './session.ts';
import { handleUpgrade } from './websocket.ts';

const SERVER_OPTIONS: ServerOptions = {
  insecureHTTPParser: false,
  requestTimeout: 0,
  headersTimeout: 60_000,
  keepAliveTimeout: 65_000,
  maxHeaderSize: 64 * 1024,
  noDelay: true,
};

/** The Kubernetes target serves TLS on loopback (kubectl sends tokens only over TLS). */
function httpServer(runtime: HttpRuntime): Server {
  return runtime.serving
    ? createHttpsServer({ ...SERVER_OPTIONS, cert: runtime.serving.certPem, key: runtime.serving.keyPem })
    : createServer(SERVER_OPTIONS);
}

export class HttpGateway extends GatewayListener<HttpRuntime, HttpSession, Server> {
  private readonly services: GatewayServices;

  constructor(runtime: HttpRuntime, services: GatewayServices) {
    super(runtime, httpServer(runtime), { label: 'http', logger: services.logger, backlog: 1024 });
    this.services = services;
    this.server.on(runtime.serving ? 'secureConnection' : 'connection', (socket: Socket) => {
      this.track(new HttpSession(socket, () => this.runtime, services), socket);
    });
    this.server.on('request', (req, res) => {
      const session = this.session(req.socket);
      if (!session) {
        res.destroy();
        return;
      }
      void handleExchange(session, this.runtime, req, res);
    });
    this.server.on('upgrade', (req: IncomingMessage, socket: Socket, head: Buffer) => {
      const session = this.session(socket);
      if (!session) {
        socket.destroy();
        return;
      }
      void handleUpgrade(session, this.runtime, req, socket, head);
    });
    this.server.on('connect', (_req, socket: Socket) => {
      socket.end('HTTP/1.1 405 Method Not Allowed\r\nconnection: close\r\ncontent-length: 0\r\n\r\n');
    });
    this.server.on('clientError', (err: NodeJS.ErrnoException, socket: Socket) => {
      services.logger.warn({ code: err.code, target: this.target }, 'malformed request refused');
      if (socket.writable)
        socket.end('HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 0\r\n\r\n');
      else socket.destroy();
    });
  }

  override update(runtime: HttpRuntime): void {
    const previous = this.runtime;
    // The listener keeps the certificate it started with (the agents' kubeconfig names it).
    if (previous.serving) runtime.serving = previous.serving;
    this.runtime = runtime;
    if (previous.upstream !== runtime.upstream) {
      // Exchanges in flight keep the pool they started with until they end.
      setTimeout(() => void previous.upstream.close().catch(() => undefined), 60_000).unref();
    }
  }

  /** Kubernetes targets: ready only once agents can find the kubeconfig. */
  protected override bound(): Promise<void> {
    return this.writeAgentKubeconfig().catch(() => undefined);
  }

  /** Kubernetes targets: the kubeconfig agents use, with this listener's port and CA. */
  private async writeAgentKubeconfig(): Promise<void> {
    const rt = this.runtime;
    const out = rt.target.agentKubeconfig;
    if (!out || !rt.serving) return;
    const text = agentKubeconfig({
      listenPort: this.port,
      caPem: rt.serving.certPem,
      tokenFile: out.tokenFile,
      ...(out.namespace ? { namespace: out.namespace } : {}),
    });
    try {
      await mkdir(dirname(out.file), { recursive: true });
      await writeFile(`${out.file}.tmp`, text, { mode: 0o644 });
      await rename(`${out.file}.tmp`, out.file);
    } catch (err) {
      this.services.logger.error({ err, file: out.file }, 'cannot write the agent kubeconfig');
    }
  }

  /** Idle kept-alive connections would hold close() open: end them now. */
  protected override closing(): void {
    this.server.closeIdleConnections();
  }

  override async drain(deadlineMs: number, reason: string): Promise<void> {
    await super.drain(deadlineMs, reason);
    await this.runtime.upstream.close().catch(() => undefined);
  }
}
