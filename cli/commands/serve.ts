// `chaperone serve`: the read-only web viewer over a store (cli/serve/). Runs until SIGINT/SIGTERM.
import { readFile } from 'node:fs/promises';
import type { Command } from 'commander';
import { CliError } from '../errors.ts';
import { storeFromFlag } from '../store.ts';
import { type Io, readPublicKeys } from './shared.ts';

export const TOKEN_ENV = 'CHAPERONE_VIEWER_TOKEN';

interface ServeFlags {
  publicKey: string[];
  listen: string;
  auth: string;
  tokenFile?: string;
  oidcIssuer?: string;
  oidcAudience?: string;
  oidcSubject?: string[];
  pageSize: string;
  secureCookie?: boolean;
}

export function parseListen(v: string): { host: string; port: number } {
  const m = /^(\[[^\]]+\]|[^:]+):(\d{1,5})$/.exec(v);
  const port = Number(m?.[2]);
  if (!m || port > 65535) throw new CliError(`--listen ${v}: use host:port, e.g. 127.0.0.1:8080`);
  return { host: m[1]!.replace(/^\[|\]$/g, ''), port };
}

export function registerServe(program: Command, io: Io): void {
  program
    .command('serve')
    .description('serve the read-only web viewer (session search, timelines, terminal replay, verification)')
    .requiredOption(
      '--public-key <pem...>',
      'trusted Ed25519 public key file(s): every session is verified with them',
    )
    .option('--listen <host:port>', 'address to listen on', '127.0.0.1:8080')
    .option(
      '--auth <mode>',
      'token (a shared bearer token, default) or oidc (access tokens of one issuer)',
      'token',
    )
    .option('--token-file <file>', `auth token: file holding the viewer token (default: $${TOKEN_ENV})`)
    .option('--oidc-issuer <url>', 'auth oidc: the issuer whose access tokens open the viewer')
    .option('--oidc-audience <aud>', 'auth oidc: the audience those tokens must carry')
    .option('--oidc-subject <sub...>', 'auth oidc: only these subjects (default: any subject of the issuer)')
    .option('--page-size <n>', 'sessions per list page', '50')
    .option('--secure-cookie', 'mark the sign-in cookie Secure (when a TLS-terminating proxy is in front)')
    .action(async (o: ServeFlags, cmd: Command) => {
      const store = storeFromFlag(cmd.optsWithGlobals().store);
      const keys = await readPublicKeys(o.publicKey);
      const { host, port } = parseListen(o.listen);
      const [{ buildViewer }, { Gate }, { SessionSource }] = await Promise.all([
        import('../serve/app.ts'),
        import('../serve/auth.ts'),
        import('../serve/source.ts'),
      ]);
      let gate: InstanceType<typeof Gate>;
      try {
        if (o.auth === 'token') {
          const token = o.tokenFile
            ? (
                await readFile(o.tokenFile, 'utf8').catch(() => {
                  throw new CliError(`cannot read token file ${o.tokenFile}`);
                })
              ).trim()
            : process.env[TOKEN_ENV]?.trim();
          if (!token) throw new CliError(`--auth token needs --token-file or $${TOKEN_ENV}`);
          gate = new Gate({ mode: 'token', token });
        } else if (o.auth === 'oidc') {
          if (!o.oidcIssuer || !o.oidcAudience)
            throw new CliError('--auth oidc needs --oidc-issuer and --oidc-audience');
          gate = new Gate({
            mode: 'oidc',
            issuer: o.oidcIssuer,
            audience: o.oidcAudience,
            ...(o.oidcSubject ? { subjects: o.oidcSubject } : {}),
          });
        } else {
          throw new CliError(`--auth ${o.auth}: use token or oidc`);
        }
      } catch (err) {
        if (err instanceof CliError) throw err;
        throw new CliError((err as Error).message);
      }
      const pageSize = Number(o.pageSize);
      if (!Number.isInteger(pageSize) || pageSize < 1 || pageSize > 1000)
        throw new CliError('--page-size: 1 to 1000');
      const source = new SessionSource(store, keys);
      // Read the index while the server starts, so the first page does not wait for all of it.
      source.warm();
      const app = await buildViewer({
        source,
        gate,
        pageSize,
        ...(o.secureCookie ? { secureCookie: true } : {}),
      });
      const address = await app.listen({ host, port });
      io.out(`chaperone viewer on ${address} (auth: ${o.auth}, store: ${store.url}, read-only)\n`);
      await new Promise<void>((resolve) => {
        const stop = () => resolve();
        process.once('SIGINT', stop);
        process.once('SIGTERM', stop);
      });
      await app.close();
    });
}
