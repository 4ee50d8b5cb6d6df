// EventInput.payloadJson (a gateway's pre-encoded payload) writes the same recorded bytes as the
// generic path (JSON.stringify of payload) for the same event, and the recording verifies unchanged.
import assert from 'node:assert/strict';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { zstdDecompressSync } from 'node:zlib';
import { type EventInput, generateSigningKey, openRecorder, openStore, verifySession } from './index.ts';
import { sampleHeader, tempDir } from './testing/fixtures.ts';

async function segmentLines(dir: string): Promise<string[]> {
  const lines: string[] = [];
  const files = (await readdir(dir, { recursive: true })).filter((f) => f.endsWith('.zst')).sort();
  for (const f of files) {
    const text = zstdDecompressSync(await readFile(join(dir, f))).toString('utf8');
    lines.push(...text.split('\n').filter((l) => l !== ''));
  }
  return lines;
}

function events(): EventInput[] {
  const out: EventInput[] = [];
  const sqls = ['SELECT 1', 'SELECT \'ünïcødé ✓ 日本 😀\', "q" -- \\ \n\t\u0001', 'x'.repeat(20_000)];
  for (let i = 0; i < 60; i++) {
    const at = { wallMs: 1_795_000_000_000 + i, monoNs: 123_456_789_000n + BigInt(i) };
    const sql = sqls[i % sqls.length]!;
    out.push({
      kind: 'pg.query',
      direction: 'client',
      payload: { sql, protocol: 'simple' },
      summary: sql,
      at,
    });
    out.push({
      kind: 'pg.result',
      direction: 'server',
      payload: { commandTag: 'SELECT 1', rows: 1, durationMs: 0.123 * i, maskedCells: 0, columns: ['a'] },
      at,
    });
  }
  return out;
}

async function record(encoded: boolean): Promise<{ lines: string[]; ok: boolean }> {
  const dir = await tempDir(encoded ? 'encoded' : 'generic');
  const key = generateSigningKey();
  const url = `file://${join(dir, 'store')}`;
  const rec = await openRecorder({
    spoolDir: join(dir, 'spool'),
    store: url,
    signingKey: key.privateKeyPem,
    seal: { maxBytes: 16 * 1024 },
  });
  const session = await rec.startSession(sampleHeader());
  await Promise.all(
    events().map((e) =>
      session.append(encoded ? { ...e, payload: {}, payloadJson: JSON.stringify(e.payload) } : e),
    ),
  );
  await session.end({ reason: 'done' });
  await rec.close();
  const report = await verifySession(openStore(url), session.sessionId, key.publicKeyPem);
  const lines = (await segmentLines(join(dir, 'store'))).filter(
    (l) => !l.includes('"kind":"session.start"') && !l.includes('"kind":"session.end"'),
  );
  return { lines, ok: report.ok && report.complete };
}

describe('pre-encoded payloads', () => {
  test('write the same event lines as the generic path, and verify', async () => {
    const generic = await record(false);
    const encoded = await record(true);
    assert.equal(generic.ok, true);
    assert.equal(encoded.ok, true);
    assert.equal(generic.lines.length, 120);
    assert.deepEqual(encoded.lines, generic.lines);
  });

  test('are refused for kinds with a payload schema, and when not a JSON object', async () => {
    const dir = await tempDir('encoded-refused');
    const rec = await openRecorder({
      spoolDir: join(dir, 'spool'),
      store: `file://${join(dir, 'store')}`,
      signingKey: generateSigningKey().privateKeyPem,
    });
    const session = await rec.startSession(sampleHeader());
    await assert.rejects(
      session.append({
        kind: 'policy.blocked',
        direction: 'internal',
        payload: {},
        payloadJson: '{"rule":"r","reason":"x"}',
      }),
      /cannot be pre-encoded/,
    );
    await assert.rejects(
      session.append({ kind: 'pg.query', direction: 'client', payload: {}, payloadJson: '[1]' }),
      /must be a JSON object/,
    );
    await session.end({ reason: 'done' });
    await rec.close();
  });
});
