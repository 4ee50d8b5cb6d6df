// Child server processes of the test environment: output to a log file, tied to this process's
// life, stopped with SIGTERM and then SIGKILL, and startup errors that quote the log's tail.
import { type ChildProcess, spawn } from 'node:child_process';
import { closeSync, existsSync, openSync, readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';

export interface ExitStatus {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface ServerProcess {
  readonly name: string;
  readonly logPath: string;
  readonly pid: number;
  /** The exit status once the process has ended, else undefined. */
  readonly exitStatus: ExitStatus | undefined;
  /** Settles when the process has ended. */
  readonly exited: Promise<ExitStatus>;
  /** Sends `signal` (SIGTERM by default), then SIGKILL after `graceMs`; resolves once it has ended. */
  stop(options?: StopOptions): Promise<ExitStatus>;
}

export interface StopOptions {
  signal?: NodeJS.Signals;
  graceMs?: number;
}

// setpriv(1) sets PR_SET_PDEATHSIG before exec, so the kernel kills the server when this process
// dies, even by SIGKILL, where no 'exit' handler runs. Without it the 'exit' handler still covers
// normal exits.
const setpriv = ['/usr/bin/setpriv', '/bin/setpriv'].find((p) => existsSync(p));

const live = new Set<ChildProcess>();
let exitHookInstalled = false;

function killAllOnExit(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const child of live) child.kill('SIGKILL');
  });
}

/** Starts `binary args` with stdout and stderr appended to `logPath`. */
export function startServerProcess(
  name: string,
  binary: string,
  args: string[],
  logPath: string,
): ServerProcess {
  killAllOnExit();
  const logFd = openSync(logPath, 'a');
  const [command, argv] = setpriv
    ? [setpriv, ['--pdeathsig', 'KILL', '--', binary, ...args]]
    : [binary, args];
  let child: ChildProcess;
  try {
    child = spawn(command, argv, { stdio: ['ignore', logFd, logFd] });
  } finally {
    closeSync(logFd);
  }
  live.add(child);
  let exitStatus: ExitStatus | undefined;
  const exited = new Promise<ExitStatus>((resolve) => {
    const done = (status: ExitStatus) => {
      live.delete(child);
      exitStatus ??= status;
      resolve(exitStatus);
    };
    child.once('exit', (code, signal) => done({ code, signal }));
    child.once('error', () => done({ code: -1, signal: null }));
  });
  return {
    name,
    logPath,
    pid: child.pid ?? -1,
    get exitStatus() {
      return exitStatus;
    },
    exited,
    async stop({ signal = 'SIGTERM', graceMs = 5000 }: StopOptions = {}) {
      if (exitStatus) return exitStatus;
      child.kill(signal);
      const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
      try {
        return await exited;
      } finally {
        clearTimeout(timer);
      }
    },
  };
}

/** The last `lines` lines of a log file ('' when it does not exist). */
export function logTail(path: string, lines = 30): string {
  try {
    return readFileSync(path, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '';
  }
}

function describeExit(status: ExitStatus): string {
  return status.signal ? `was killed by ${status.signal}` : `exited with code ${status.code}`;
}

export interface WaitOptions {
  /** What is awaited, for the error message (e.g. "kube-apiserver /readyz"). */
  what: string;
  timeoutMs: number;
  intervalMs?: number;
  /** Fail at once, quoting its log, when this process ends while waiting. */
  process: ServerProcess;
}

/**
 * Polls `ready` until it returns true. Errors and false are retried; the last error and the tail of
 * the process's log go into the timeout error.
 */
export async function waitUntilReady(ready: () => Promise<boolean>, options: WaitOptions): Promise<void> {
  const { what, timeoutMs, intervalMs = 100, process: proc } = options;
  const deadline = Date.now() + timeoutMs;
  let lastProblem = 'not ready';
  for (;;) {
    if (proc.exitStatus) {
      throw new Error(
        `${proc.name} ${describeExit(proc.exitStatus)} before ${what}; tail of ${proc.logPath}:\n${logTail(proc.logPath)}`,
      );
    }
    try {
      if (await ready()) return;
    } catch (error) {
      lastProblem = error instanceof Error ? error.message : String(error);
    }
    if (Date.now() > deadline) {
      throw new Error(
        `timed out after ${timeoutMs} ms waiting for ${what} (${lastProblem}); tail of ${proc.logPath}:\n${logTail(proc.logPath)}`,
      );
    }
    await Promise.race([sleep(intervalMs), proc.exited]);
  }
}

/** `count` distinct TCP ports on 127.0.0.1 that were free a moment ago (held together, so distinct). */
export async function freePorts(count: number): Promise<number[]> {
  const servers = Array.from({ length: count }, () => createServer());
  try {
    return await Promise.all(
      servers.map(
        (server) =>
          new Promise<number>((resolve, reject) => {
            server.once('error', reject);
            server.listen(0, '127.0.0.1', () => {
              const address = server.address();
              if (address === null || typeof address === 'string')
                reject(new Error('could not reserve a port'));
              else resolve(address.port);
            });
          }),
      ),
    );
  } finally {
    await Promise.all(
      servers.map(
        (server) =>
          new Promise<void>((resolve) => (server.listening ? server.close(() => resolve()) : resolve())),
      ),
    );
  }
}
