// What the benchmarks read of another process on this machine (Linux /proc and ss).
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { promisify } from 'node:util';

const TICKS = 100; // USER_HZ

/** utime and stime of a process in seconds. */
export async function cpuSeconds(pid: number): Promise<{ user: number; sys: number }> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return { user: Number(fields[11]) / TICKS, sys: Number(fields[12]) / TICKS };
}

/** utime + stime in seconds; NaN without a pid. */
export async function totalCpuSeconds(pid: number | undefined): Promise<number> {
  if (!pid) return Number.NaN;
  const { user, sys } = await cpuSeconds(pid);
  return user + sys;
}

/** The pid listening on a local TCP port (our own child processes: ss may show them). */
export async function pidOnPort(port: number): Promise<number | undefined> {
  const { stdout } = await promisify(execFile)('ss', ['-Hltnp', `sport = :${port}`]).catch(() => ({
    stdout: '',
  }));
  const m = /pid=(\d+)/.exec(stdout);
  return m ? Number(m[1]) : undefined;
}
