// Approvals as files in a directory, for a reviewer on the same machine (make demo, standalone use):
//   <id>.request.json   written by the sidecar when a statement waits
//   <id>.decision.json  written by the reviewer: {"approved": true, "approver": "ann", "reason": "..."}
//   <id>.closed.json    written by the sidecar once the request is settled (decided, timed out, or
//                       the session closed), so listings show what still waits.
// Files are written to a temporary name and renamed, so a reader never sees half a file. The
// decision file is polled (fs.watch is unreliable on network and container filesystems).
import { randomBytes } from 'node:crypto';
import { mkdir, readdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import type { ApprovalBackend, ApprovalDecision, ApprovalRequest } from './types.ts';
import { boundDecision } from './wait.ts';

export const localDecisionSchema = z.object({
  approved: z.boolean(),
  approver: z.string().max(256).optional(),
  reason: z.string().max(4096).optional(),
});
export type LocalDecision = z.infer<typeof localDecisionSchema>;

export interface LocalApprovalRequestFile extends ApprovalRequest {
  id: string;
  requestedAt: string;
  expiresAt: string;
  howToDecide: string;
}

export interface LocalApprovalOptions {
  /** How often the decision file is looked for. */
  pollIntervalMs?: number;
  /** Called after each look that found no valid decision (tests count looks instead of sleeping). */
  onNoDecision?: () => void;
}

const ID_PATTERN = /^[a-z0-9-]{1,64}$/;

function newId(): string {
  const stamp = new Date()
    .toISOString()
    .replace(/[-:TZ.]/g, '')
    .slice(0, 14);
  return `${stamp}-${randomBytes(4).toString('hex')}`;
}

async function writeAtomically(path: string, content: string): Promise<void> {
  const tmp = `${path}.${randomBytes(4).toString('hex')}.tmp`;
  await writeFile(tmp, content, { mode: 0o640 });
  await rename(tmp, path);
}

async function readDecision(file: string): Promise<ApprovalDecision | undefined> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    return undefined; // a reviewer's editor may be saving it; look again next time
  }
  const parsed = localDecisionSchema.safeParse(json);
  return parsed.success ? { ...parsed.data } : undefined;
}

export function createLocalApprovalBackend(dir: string, options: LocalApprovalOptions = {}): ApprovalBackend {
  const pollIntervalMs = options.pollIntervalMs ?? 250;
  return {
    async request(req, signal) {
      const id = newId();
      const requestedAt = new Date();
      const file: LocalApprovalRequestFile = {
        id,
        ...req,
        requestedAt: requestedAt.toISOString(),
        expiresAt: new Date(requestedAt.getTime() + req.timeoutMs).toISOString(),
        howToDecide: `write ${id}.decision.json in this directory: {"approved": true|false, "approver": "<name>", "reason": "<why>"}`,
      };
      try {
        await mkdir(dir, { recursive: true });
        await writeAtomically(join(dir, `${id}.request.json`), `${JSON.stringify(file, null, 2)}\n`);
      } catch (err) {
        return {
          approved: false,
          reason: `approval request could not be written: ${(err as Error).message}`,
        };
      }
      let timer: NodeJS.Timeout | undefined;
      let stopped = false;
      const decision = new Promise<ApprovalDecision>((resolve, reject) => {
        const poll = async () => {
          if (stopped) return;
          try {
            const found = await readDecision(join(dir, `${id}.decision.json`));
            if (found) return resolve(found);
          } catch (err) {
            return reject(err);
          }
          options.onNoDecision?.();
          if (!stopped) timer = setTimeout(poll, pollIntervalMs);
        };
        void poll();
      });
      const outcome = await boundDecision(decision, req.timeoutMs, signal, () => {
        stopped = true;
        clearTimeout(timer);
      });
      const closed = { id, closedAt: new Date().toISOString(), outcome };
      await writeAtomically(join(dir, `${id}.closed.json`), `${JSON.stringify(closed, null, 2)}\n`).catch(
        () => {
          // Best effort: the outcome goes back to the caller, which records it.
        },
      );
      return outcome;
    },
  };
}

/** Requests in `dir` that nobody has settled yet (for a CLI listing). */
export async function listPendingLocalApprovals(dir: string): Promise<LocalApprovalRequestFile[]> {
  const names = new Set(await readdir(dir));
  const pending: LocalApprovalRequestFile[] = [];
  for (const name of [...names].sort()) {
    const match = /^(.+)\.request\.json$/.exec(name);
    if (!match) continue;
    const id = match[1]!;
    if (names.has(`${id}.decision.json`) || names.has(`${id}.closed.json`)) continue;
    try {
      pending.push(JSON.parse(await readFile(join(dir, name), 'utf8')) as LocalApprovalRequestFile);
    } catch {
      // skip unreadable files
    }
  }
  return pending;
}

/** Writes a reviewer's decision for request `id` (for a CLI or a script). */
export async function decideLocalApproval(dir: string, id: string, decision: LocalDecision): Promise<void> {
  if (!ID_PATTERN.test(id)) throw new Error(`invalid approval id ${JSON.stringify(id)}`);
  const valid = localDecisionSchema.parse(decision);
  try {
    await readFile(join(dir, `${id}.request.json`));
  } catch {
    throw new Error(`no approval request ${id} in ${dir}`);
  }
  await writeAtomically(join(dir, `${id}.decision.json`), `${JSON.stringify(valid)}\n`);
}
