// One listener per postgres target: accepts agents on the loopback port and runs a session each;
// the listener life (bind, drain on shutdown or when the target leaves the config) is the shared one.
import { createServer, type Server } from 'node:net';
import { GatewayListener } from '../session/index.ts';
import type { GatewayServices, PostgresRuntime } from './context.ts';
import { adoptWithDirectReads } from './direct-reads.ts';
import { PostgresSession } from './session.ts';

export class PostgresGateway extends GatewayListener<PostgresRuntime, PostgresSession, Server> {
  constructor(runtime: PostgresRuntime, services: GatewayServices) {
    // Accepted paused, so the agent's reads can move to a reused buffer before the first one.
    super(runtime, createServer({ noDelay: true, pauseOnConnect: true }), {
      label: 'postgres',
      logger: services.logger,
      backlog: 1024,
    });
    this.server.on('connection', (accepted) => {
      this.track(new PostgresSession(adoptWithDirectReads(accepted), () => this.runtime, services));
    });
  }
}
