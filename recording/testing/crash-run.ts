// Runs recording/testing/crash-writer.ts as a child process and kills it with SIGKILL mid-stream.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createInterface } from 'node:readline';

export interface CrashWriterConfig {
  spoolDir: string;
  store: string;
  s3?: object;
  signingKey: string;
  sessions: number;
  batch?: number;
  maxUnsettledAppends?: number;
  seal?: { maxBytes: number; maxMs: number };
  endFirstAfter?: number;
}

/**
 * Runs the crash writer until `enough` events are acknowledged in total (and, with endFirstAfter,
 * session 0 has ended), then kill -9. Returns the acknowledged count per session and the sessions
 * that ended.
 */
export async function runAndKill(
  config: CrashWriterConfig,
  enough: number,
): Promise<{ acked: Map<string, number>; ended: Set<string> }> {
  const child = spawn(process.execPath, [new URL('./crash-writer.ts', import.meta.url).pathname], {
    env: { ...process.env, CRASH_WRITER_CONFIG: JSON.stringify(config) },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const acked = new Map<string, number>();
  const ended = new Set<string>();
  const exited = new Promise<NodeJS.Signals | null>((resolve) =>
    child.on('exit', (_code, signal) => resolve(signal)),
  );
  for await (const line of createInterface({ input: child.stdout })) {
    const [what, id, n] = line.split(' ');
    if (what === 'started') acked.set(id!, 0);
    if (what === 'acked') acked.set(id!, Number(n));
    if (what === 'ended') ended.add(id!);
    const total = [...acked.values()].reduce((a, b) => a + b, 0);
    const endDone = config.endFirstAfter === undefined || ended.size > 0;
    if (total >= enough && endDone && child.exitCode === null && !child.killed) child.kill('SIGKILL');
  }
  assert.equal(await exited, 'SIGKILL');
  return { acked, ended };
}

export interface JournalRecordAt {
  file: string;
  start: number;
  end: number;
  sessionId: string;
  seq: number;
}

/** Where each record of a spool's journal files lies (stops at the first one that does not parse). */
export async function journalRecords(spoolDir: string): Promise<JournalRecordAt[]> {
  const dir = join(spoolDir, 'journal');
  const out: JournalRecordAt[] = [];
  for (const name of (await readdir(dir)).sort()) {
    const file = join(dir, name);
    const bytes = await readFile(file);
    for (let pos = 8; pos + 8 <= bytes.length; ) {
      const length = bytes.readUInt32LE(pos);
      if (pos + 8 + length > bytes.length) break;
      const idLength = bytes[pos + 8]!;
      const sessionId = bytes.subarray(pos + 9, pos + 9 + idLength).toString('latin1');
      const seq = Number(
        /^\{"seq":(\d+),/.exec(bytes.subarray(pos + 9 + idLength, pos + 40 + idLength).toString())?.[1],
      );
      out.push({ file, start: pos, end: pos + 8 + length, sessionId, seq });
      pos += 8 + length;
    }
  }
  return out;
}
