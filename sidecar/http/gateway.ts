// One listener per HTTP or Kubernetes target: Node's HTTP/1.1 server on the loopback port (strict
// parser: conflicting Content-Length/Transfer-Encoding and other smuggling shapes are refused by
// llhttp before any handler runs), one HttpSession per agent connection, WebSocket upgrades to
// websocket.ts, every other upgrade (h2c) and CONNECT refused.

import { mkdir, rename, writeFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerOptions } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { Socket } from 'node:net';
import { dirname } from 'node:path';
import { agentKubeconfig } from '../kube/kubeconfig.ts';
import type { GatewayServices, HttpRuntime } from './context.ts';
import { handleExchange } from './exchange.ts';
import { HttpSession } from './session.ts';
import { handleUpgrade } from './websocket.ts';

export class HttpGateway {
  private runtime: HttpRuntime;
  private readonly services: GatewayServices;
  private readonly server: Server;
  private readonly sessions = new Map<Socket, HttpSession>();
  private listening = false;

  constructor(runtime: HttpRuntime, services: GatewayServices) {
    this.runtime = runtime;
    this.services = services;
    const options: ServerOptions = {
      insecureHTTPParser: false,
      requestTimeout: 0,
      headersTimeout: 60_000,
      keepAliveTimeout: 65_000,
      maxHeaderSize: 64 * 1024,
      noDelay: true,
    };
    // The Kubernetes target serves TLS on loopback (kubectl sends tokens only over TLS).
    this.server = runtime.serving
      ? createHttpsServer({ ...options, cert: runtime.serving.certPem, key: runtime.serving.keyPem })
      : createServer(options);
    this.server.on(runtime.serving ? 'secureConnection' : 'connection', (socket: Socket) => {
      const session = new HttpSession(socket, () => this.runtime, services);
      this.sessions.set(socket, session);
      session.done.then(() => this.sessions.delete(socket));
    });
    this.server.on('request', (req, res) => {
      const session = this.sessions.get(req.socket);
      if (!session) {
        res.destroy();
        return;
      }
      void handleExchange(session, this.runtime, req, res);
    });
    this.server.on('upgrade', (req: IncomingMessage, socket: Socket, head: Buffer) => {
      const session = this.sessions.get(socket);
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

  get target(): string {
    return this.runtime.target.name;
  }

  get listenPort(): number {
    return this.runtime.target.listenPort;
  }

  get activeSessions(): number {
    return this.sessions.size;
  }

  get isListening(): boolean {
    return this.listening;
  }

  update(runtime: HttpRuntime): void {
    const previous = this.runtime;
    // The listener keeps the certificate it started with (the agents' kubeconfig names it).
    if (previous.serving) runtime.serving = previous.serving;
    this.runtime = runtime;
    if (previous.upstream !== runtime.upstream) {
      // Exchanges in flight keep the pool they started with until they end.
      setTimeout(() => void previous.upstream.close().catch(() => undefined), 60_000).unref();
    }
  }

  listen(host: string): Promise<void> {
    const port = this.runtime.target.listenPort;
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen({ host, port, backlog: 1024 }, () => {
        this.server.off('error', reject);
        this.listening = true;
        this.services.logger.info(
          { target: this.target, protocol: this.runtime.target.protocol, host, port: this.port },
          'http listener bound',
        );
        // Kubernetes targets: ready only once agents can find the kubeconfig.
        this.writeAgentKubeconfig().then(resolve, resolve);
      });
    });
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

  get port(): number {
    const a = this.server.address();
    return typeof a === 'object' && a ? a.port : this.runtime.target.listenPort;
  }

  stopAccepting(): Promise<void> {
    if (!this.listening) return Promise.resolve();
    this.listening = false;
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    // Idle kept-alive connections would hold close() open: end them now.
    this.server.closeIdleConnections();
    return closed;
  }

  async drain(deadlineMs: number, reason: string): Promise<void> {
    const closing = this.stopAccepting();
    let timer: NodeJS.Timeout | undefined;
    const timedOut = await Promise.race([
      Promise.all([...this.sessions.values()].map((s) => s.done)).then(() => false),
      new Promise<boolean>((resolve) => {
        timer = setTimeout(() => resolve(true), deadlineMs);
      }),
    ]);
    clearTimeout(timer);
    if (timedOut) await Promise.all([...this.sessions.values()].map((s) => s.terminate(reason)));
    await closing;
    await this.runtime.upstream.close().catch(() => undefined);
  }
}
