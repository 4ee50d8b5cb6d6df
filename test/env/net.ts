// Plumbing shared by the test environment's servers: free loopback ports, waiting for readiness,
// and child processes that cannot outlive the process that started them.
import { type ChildProcess, spawn } from 'node:child_process';
import { closeSync, existsSync, openSync, readFileSync } from 'node:fs';
import { createServer, Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';

export const LOOPBACK = '127.0.0.1';

/** A TCP port that was free on 127.0.0.1 a moment ago (the kernel picks it). */
export function freePort(host = LOOPBACK): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.once('error', reject);
    server.listen({ host, port: 0, exclusive: true }, () => {
      const address = server.address();
      server.close(() => {
        if (address && typeof address === 'object') resolve(address.port);
        else reject(new Error('no port assigned'));
      });
    });
  });
}

/** Distinct free ports (asked for together so the kernel cannot hand out the same one twice). */
export async function freePorts(count: number, host = LOOPBACK): Promise<number[]> {
  const ports = new Set<number>();
  while (ports.size < count) ports.add(await freePort(host));
  return [...ports];
}

/** True when something accepts TCP connections on host:port. */
export function tcpAccepts(host: string, port: number, timeoutMs = 1000): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = new Socket();
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.once('error', () => done(false));
    socket.connect(port, host, () => done(true));
  });
}

/** True when GET url answers 2xx. */
export async function httpOk(url: string, timeoutMs = 2000): Promise<boolean> {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
    await res.body?.cancel();
    return res.ok;
  } catch {
    return false;
  }
}

export interface WaitOptions {
  timeoutMs?: number;
  intervalMs?: number;
  /** Stop waiting as soon as this process has exited, and show its log. */
  process?: OwnedProcess;
}

/** Polls `check` until it is true; fails with `what`, and the process's log, on timeout or exit. */
export async function waitUntil(
  what: string,
  check: () => Promise<boolean>,
  options: WaitOptions = {},
): Promise<void> {
  const { timeoutMs = 60_000, intervalMs = 50, process: proc } = options;
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (proc && !proc.running) {
      throw new Error(
        `${what}: ${proc.name} exited (${proc.exitDescription()}) before it was ready\n${proc.logTail()}`,
      );
    }
    if (await check()) return;
    if (Date.now() > deadline) {
      throw new Error(`${what}: not ready after ${timeoutMs} ms${proc ? `\n${proc.logTail()}` : ''}`);
    }
    await sleep(intervalMs);
  }
}

export interface SpawnOwnedOptions {
  /** Shown in errors. */
  name: string;
  /** stdout and stderr are appended to this file (the child writes it directly, no pipe). */
  logFile: string;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  uid?: number;
  gid?: number;
  /** Sent by the kernel when this process dies without stopping the child. Default SIGTERM. */
  deathSignal?: NodeJS.Signals;
  /** Sent by stop(). Default SIGTERM. */
  stopSignal?: NodeJS.Signals;
}

export interface OwnedProcess {
  readonly name: string;
  readonly pid: number;
  readonly running: boolean;
  readonly child: ChildProcess;
  /** Resolves when the process has exited. */
  readonly exited: Promise<void>;
  exitDescription(): string;
  /** The last lines of the log file. */
  logTail(lines?: number): string;
  /** Sends the stop signal, then SIGKILL after `graceMs`; resolves once the process is gone. */
  stop(graceMs?: number): Promise<void>;
}

const setpriv = ['/usr/bin/setpriv', '/bin/setpriv'].find((p) => existsSync(p));

/**
 * Spawns a server that dies with this process. The kernel's parent-death signal (set by util-linux
 * setpriv right before exec, after any uid change, since a uid change clears it) covers SIGKILL and
 * crashes, where no exit handler of ours would run. The child gets its own process group so a
 * terminal's Ctrl-C reaches the test runner, which then stops the servers in order.
 */
export function spawnOwned(
  command: string,
  args: readonly string[],
  options: SpawnOwnedOptions,
): OwnedProcess {
  const { name, logFile, deathSignal = 'SIGTERM', stopSignal = 'SIGTERM' } = options;
  const [file, argv] = setpriv
    ? [setpriv, ['--pdeathsig', deathSignal.replace(/^SIG/, ''), '--', command, ...args]]
    : [command, [...args]];
  const fd = openSync(logFile, 'a');
  let child: ChildProcess;
  try {
    child = spawn(file, argv, {
      env: options.env ?? process.env,
      cwd: options.cwd,
      uid: options.uid,
      gid: options.gid,
      stdio: ['ignore', fd, fd],
      detached: true,
    });
  } finally {
    closeSync(fd);
  }
  // Whoever owns the process stops it; an unref'd child never keeps a finished test file alive, and
  // the parent-death signal then takes it down.
  child.unref();
  let running = true;
  let spawnError: Error | undefined;
  const exited = new Promise<void>((resolve) => {
    child.once('exit', () => {
      running = false;
      resolve();
    });
    child.once('error', (err) => {
      spawnError = err;
      running = false;
      resolve();
    });
  });
  const tail = (lines = 40) => {
    try {
      return readFileSync(logFile, 'utf8').split('\n').slice(-lines).join('\n');
    } catch {
      return '';
    }
  };
  return {
    name,
    get pid() {
      return child.pid ?? -1;
    },
    get running() {
      return running;
    },
    child,
    exited,
    exitDescription: () =>
      spawnError ? String(spawnError.message) : `code ${child.exitCode}, signal ${child.signalCode}`,
    logTail: tail,
    async stop(graceMs = 15_000) {
      if (!running) return;
      child.kill(stopSignal);
      const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
      await exited;
      clearTimeout(timer);
    },
  };
}

/** Runs a command to completion; rejects with its output when it fails. */
export function run(
  command: string,
  args: readonly string[],
  options: { env?: NodeJS.ProcessEnv; uid?: number; gid?: number; input?: string; cwd?: string } = {},
): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, {
      env: options.env ?? process.env,
      uid: options.uid,
      gid: options.gid,
      cwd: options.cwd,
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    child.once('error', reject);
    child.once('close', (code, signal) => {
      const stdout = Buffer.concat(out).toString('utf8');
      if (code === 0) resolve(stdout);
      else {
        const stderr = Buffer.concat(err).toString('utf8');
        reject(
          new Error(
            `${command} ${args.join(' ')} failed (code ${code}, signal ${signal}):\n${stderr}${stdout}`,
          ),
        );
      }
    });
    child.stdin.end(options.input ?? '');
  });
}
