// Network namespaces for tests: a "pod" namespace and an "upstream" namespace joined by a veth pair,
// with private IPv4 and IPv6 addresses that never route anywhere else. Everything started here is
// stopped and both namespaces deleted by cleanup(), also when a test fails half way.
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { promisify } from 'node:util';

const exec = promisify(execFile);
const NET_TOOLS = join(import.meta.dirname, 'net-tools.ts');

export const ADDRESSES = {
  pod4: '10.213.0.1',
  upstream4: '10.213.0.2',
  pod6: 'fd00:213::1',
  upstream6: 'fd00:213::2',
} as const;

export interface ToolResult {
  ok: boolean;
  data?: string;
  code?: string;
}

export interface User {
  uid: number;
  gid: number;
}

export class NetnsPair {
  readonly pod: string;
  readonly upstream: string;
  private readonly children: ChildProcess[] = [];

  constructor() {
    const id = randomBytes(3).toString('hex');
    this.pod = `chp-pod-${id}`;
    this.upstream = `chp-up-${id}`;
  }

  async setup(): Promise<void> {
    const vethPod = `vp${this.pod.slice(-6)}`;
    const vethUp = `vu${this.pod.slice(-6)}`;
    const steps: string[][] = [
      ['netns', 'add', this.pod],
      ['netns', 'add', this.upstream],
      [
        'link',
        'add',
        vethPod,
        'netns',
        this.pod,
        'type',
        'veth',
        'peer',
        'name',
        vethUp,
        'netns',
        this.upstream,
      ],
      ['-n', this.pod, 'link', 'set', 'lo', 'up'],
      ['-n', this.upstream, 'link', 'set', 'lo', 'up'],
      ['-n', this.pod, 'addr', 'add', `${ADDRESSES.pod4}/30`, 'dev', vethPod],
      ['-n', this.upstream, 'addr', 'add', `${ADDRESSES.upstream4}/30`, 'dev', vethUp],
      ['-n', this.pod, 'addr', 'add', `${ADDRESSES.pod6}/64`, 'dev', vethPod, 'nodad'],
      ['-n', this.upstream, 'addr', 'add', `${ADDRESSES.upstream6}/64`, 'dev', vethUp, 'nodad'],
      ['-n', this.pod, 'link', 'set', vethPod, 'up'],
      ['-n', this.upstream, 'link', 'set', vethUp, 'up'],
    ];
    for (const step of steps) await exec('ip', step);
  }

  /** Runs a command inside a namespace as the given user (root when absent). */
  command(ns: string, user: User | undefined, argv: readonly string[]): string[] {
    const asUser = user
      ? ['setpriv', `--reuid=${user.uid}`, `--regid=${user.gid}`, '--clear-groups', '--inh-caps=-all']
      : [];
    return ['netns', 'exec', ns, ...asUser, ...argv];
  }

  async exec(ns: string, user: User | undefined, argv: readonly string[], env?: NodeJS.ProcessEnv) {
    return exec('ip', this.command(ns, user, argv), { env: { ...process.env, ...env } });
  }

  /** Starts a long-running net tool and resolves once it listens. */
  async serve(ns: string, user: User | undefined, args: readonly string[]): Promise<void> {
    const child = spawn('ip', this.command(ns, user, [process.execPath, NET_TOOLS, ...args]), {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.children.push(child);
    await new Promise<void>((resolve, reject) => {
      let stderr = '';
      child.stderr!.on('data', (d) => {
        stderr += d;
      });
      child.stdout!.on('data', (d) => {
        if (String(d).includes('ready')) resolve();
      });
      child.on('exit', (code) => reject(new Error(`${args.join(' ')} exited ${code}: ${stderr}`)));
    });
  }

  async tool(ns: string, user: User | undefined, args: readonly string[]): Promise<ToolResult> {
    const { stdout } = await this.exec(ns, user, [process.execPath, NET_TOOLS, ...args]);
    return JSON.parse(stdout.trim()) as ToolResult;
  }

  async cleanup(): Promise<void> {
    for (const child of this.children) child.kill('SIGKILL');
    await Promise.allSettled(this.children.map((c) => (c.exitCode === null ? once(c) : Promise.resolve())));
    for (const ns of [this.pod, this.upstream]) {
      await exec('ip', ['netns', 'del', ns]).catch(() => {});
    }
  }
}

function once(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => child.once('exit', () => resolve()));
}
