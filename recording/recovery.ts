// Crash recovery of one session folder in the spool: the state file is written after the sealed
// segment it describes, so a crash in between leaves a newer segment than the state knows. The
// segment (signed, on disk) wins; the totals are recounted from its events.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { zstdDecompress } from 'node:zlib';
import type { Logger } from 'pino';
import { buildIndex, encodeIndex } from './index-record.ts';
import type { SigningKey } from './keys.ts';
import { manifestName, segmentName } from './layout.ts';
import { SegmentManifestSchema } from './manifest.ts';
import type { SessionState, Spool } from './spool.ts';

const decompress = promisify(zstdDecompress);

export async function reconcileSealed(
  spool: Spool,
  sessionId: string,
  key: SigningKey,
  log: Logger,
): Promise<SessionState | undefined> {
  let state: SessionState | undefined;
  try {
    state = await spool.readState(sessionId);
  } catch (err) {
    log.error(
      { sessionId, err: (err as Error).message },
      'unreadable session state in spool; leaving the folder untouched',
    );
    return undefined;
  }
  if (!state) {
    // Created but never written to: nothing of value inside.
    if ((await spool.listSealed(sessionId)).length === 0) await spool.removeSession(sessionId);
    else log.error({ sessionId }, 'sealed segments without session state in spool; leaving them untouched');
    return undefined;
  }
  let changed = false;
  for (const index of await spool.listSealed(sessionId)) {
    if (index < state.nextIndex) continue;
    const dir = spool.sessionDir(sessionId);
    const manifest = SegmentManifestSchema.parse(
      JSON.parse(await readFile(join(dir, manifestName(index)), 'utf8')),
    );
    const raw = await decompress(await readFile(join(dir, segmentName(index))));
    const t = state.totals;
    for (const text of raw.toString('utf8').split('\n')) {
      if (!text) continue;
      const ev = JSON.parse(text) as {
        seq: number;
        wallMs: number;
        kind: string;
        payload: Record<string, unknown>;
      };
      t.events++;
      t.rawBytes += Buffer.byteLength(text) + 1;
      t.countsByKind[ev.kind] = (t.countsByKind[ev.kind] ?? 0) + 1;
      if (ev.kind === 'recording.gap') {
        t.gaps++;
        t.lostEvents += typeof ev.payload.events === 'number' ? ev.payload.events : 0;
      }
      if (ev.kind === 'session.end') {
        state.endedAtMs = ev.wallMs;
        state.endReason = String(ev.payload.reason ?? 'ended');
      }
    }
    t.segments = index;
    t.lastSeq = manifest.lastSeq;
    t.lastSegmentSha256 = manifest.sha256;
    state.nextIndex = index + 1;
    state.prevSha256 = manifest.sha256;
    if (manifest.final) {
      state.ended = true;
      state.status = state.status === 'open' ? 'ended' : state.status;
    }
    changed = true;
  }
  if (changed) {
    log.warn(
      { sessionId, nextIndex: state.nextIndex },
      'spool state was behind its sealed segments; reconciled',
    );
    await spool.writeState(state);
    if (state.ended) {
      const index = buildIndex(
        {
          header: state.header,
          date: state.date,
          namespace: state.namespace,
          status: state.status,
          ...(state.endedAtMs !== undefined ? { endedAtMs: state.endedAtMs } : {}),
          ...(state.endReason !== undefined ? { endReason: state.endReason } : {}),
          totals: state.totals,
        },
        key,
      );
      await spool.writeIndex(sessionId, encodeIndex(index));
    }
  }
  return state;
}
