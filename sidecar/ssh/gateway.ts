// One listener per ssh target: an ssh2 server on the loopback port with the sidecar's own host key
// and a session per agent connection; the listener life (bind, drain on shutdown or when the target
// leaves the config) is the shared one. A reload keeps the host key the listener started with.
import ssh2 from 'ssh2';
import { GatewayListener } from '../session/index.ts';
import type { SshRuntime, SshServices } from './context.ts';
import { nativeSshCrypto } from './crypto.ts';
import { SshSession } from './session.ts';

export class SshGateway extends GatewayListener<SshRuntime, SshSession, ssh2.Server> {
  constructor(runtime: SshRuntime, services: SshServices) {
    super(runtime, new ssh2.Server({ hostKeys: [runtime.hostKey], ident: 'chaperone' }), {
      label: 'ssh',
      logger: services.logger,
    });
    this.server.on('connection', (conn, info) => {
      this.track(new SshSession(conn, `${info.ip}:${info.port}`, () => this.runtime, services));
    });
    this.server.on('error', (err: Error) => services.logger.warn({ err: err.message }, 'ssh listener error'));
    if (!nativeSshCrypto)
      services.logger.warn(
        { target: this.target },
        'ssh2 runs without its native crypto binding (sshcrypto.node did not load): SSH transfers cost about twice the CPU',
      );
  }
}
