import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { cp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';
import { generateSigningKey } from '../../recording/index.ts';
import { sampleHeader, sqlEvents } from '../../recording/testing/fixtures.ts';
import { appendStatements, fileTestStore } from '../../recording/testing/test-store.ts';
import { run } from '../program.ts';
import { VERIFY_SCRIPT } from './verify-script.ts';

const exec = promisify(execFile);

async function files(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true, recursive: true }))
    if (e.isFile()) out.push(relative(dir, join(e.parentPath, e.name)));
  return out.sort();
}

/** Runs the shell block of the bundle's own VERIFY.md in `dir`; exit code and output. */
async function verifyWithStandardTools(dir: string, script: string): Promise<{ code: number; out: string }> {
  await writeFile(join(dir, '.check.sh'), script);
  try {
    const { stdout } = await exec('sh', [join(dir, '.check.sh')], { cwd: dir });
    return { code: 0, out: stdout };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, out: `${e.stdout}${e.stderr}` };
  }
}

async function flipByte(file: string, at: number): Promise<void> {
  const b = await readFile(file);
  b[at] = b[at]! ^ 0x01;
  await writeFile(file, b);
}

/** SHA256SUMS is not signed: an attacker can redo it, so the signed checks must fail on their own. */
async function redoSums(dir: string): Promise<void> {
  const names = (await files(dir)).filter((f) => f !== 'SHA256SUMS' && !f.startsWith('.'));
  const { stdout } = await exec('sha256sum', names, { cwd: dir });
  await writeFile(join(dir, 'SHA256SUMS'), stdout);
}

test('an evidence bundle verifies with sha256sum and openssl alone, and fails when any byte changes', async () => {
  const fixture = await fileTestStore('evidence');
  const { dir, url: store } = fixture;
  const pub = await fixture.publicKeyFile();
  // Small segments: each session spans several, so the chain is exercised.
  const rec = await fixture.recorder({ seal: { maxBytes: 6000 } });
  const ids: string[] = [];
  for (const ns of ['agents', 'billing']) {
    const s = await rec.startSession(
      sampleHeader({ identity: { ...sampleHeader().identity, namespace: ns } }),
    );
    await appendStatements(s, 12);
    await s.end({ reason: 'client closed' });
    ids.push(s.sessionId);
  }
  await rec.close();

  const zip = join(dir, 'bundle.zip');
  let out = '';
  const code = await run(
    ['--store', store, 'evidence', ...ids, '-o', zip, '--public-key', pub, '--reason', 'case 42', '--json'],
    {
      out: (t) => {
        out += t;
      },
      err: (t) => assert.fail(t),
    },
  );
  assert.equal(code, 0);
  const summary = JSON.parse(out);
  assert.equal(summary.verified, true);
  assert.deepEqual(
    summary.sessions.map((s: { sessionId: string }) => s.sessionId),
    ids,
  );

  const unzipped = join(dir, 'unzipped');
  await exec('unzip', ['-q', zip, '-d', unzipped]);
  const bundled = await files(unzipped);
  const segments = bundled.filter((f) => f.endsWith('.zst'));
  assert.ok(segments.length >= 4, `several segments per session (${segments.length})`);
  assert.ok(segments.length <= 8, `few enough to test each file quickly (${segments.length})`);
  for (const f of ['VERIFY.md', 'verify.sh', 'bundle.json', 'SHA256SUMS']) assert.ok(bundled.includes(f));
  const manifest = JSON.parse(await readFile(join(unzipped, 'bundle.json'), 'utf8'));
  assert.equal(manifest.reason, 'case 42');
  assert.equal(manifest.sessions[0].why, 'named on the command line');
  assert.equal(manifest.sessions[0].verifiedWhenBundled.ok, true);

  // The commands are exactly VERIFY.md's shell block, which is also verify.sh.
  const doc = await readFile(join(unzipped, 'VERIFY.md'), 'utf8');
  const script = /```sh\n([\s\S]*?)```/.exec(doc)?.[1];
  assert.equal(script, VERIFY_SCRIPT);
  assert.equal(await readFile(join(unzipped, 'verify.sh'), 'utf8'), script);

  const ok = await verifyWithStandardTools(unzipped, script);
  assert.equal(ok.code, 0, ok.out);
  assert.match(ok.out, /bundle verified: 2 sessions/);
  assert.match(ok.out, new RegExp(`OK session ${ids[0]}: \\d+ segments, chain intact, status: ended`));

  let n = 0;
  for (const f of bundled) {
    const size = (await readFile(join(unzipped, f))).length;
    // Every file once in the middle; signed documents also at their first and last byte.
    const positions = f.endsWith('.json') ? [0, Math.floor(size / 2), size - 1] : [Math.floor(size / 2)];
    for (const at of positions) {
      // Any change at all: the transport check catches it.
      const copy = join(dir, `t${n++}`);
      await cp(unzipped, copy, { recursive: true });
      await flipByte(join(copy, f), at);
      const r = await verifyWithStandardTools(copy, script);
      assert.notEqual(r.code, 0, `${f} byte ${at} changed, still verified:\n${r.out}`);
      // A change to the recording or the keys fails the signed checks too, with SHA256SUMS redone
      // (except whitespace after a PEM's END line: the key, and so the evidence, is the same).
      if (f.startsWith('store/') || (f.startsWith('keys/') && at < size - 1)) {
        await redoSums(copy);
        const forged = await verifyWithStandardTools(copy, script);
        assert.notEqual(forged.code, 0, `${f} byte ${at} changed and SHA256SUMS redone, still verified`);
        assert.doesNotMatch(forged.out, /SHA256SUMS/);
      }
    }
  }

  // Removing a middle segment breaks the numbering; removing the last one (a cut tail) disagrees
  // with the signed index object. Whatever SHA256SUMS says.
  const lastOf = segments.filter((f) => f.includes(ids[0]!)).at(-1)!;
  for (const [victim, why] of [
    [
      segments.find((f) => f.includes(ids[0]!) && f.endsWith('seg-000002.zst'))!,
      /segment 2 is missing|index says/,
    ],
    [lastOf, /the index says \d+ segments, found \d+/],
  ] as const) {
    const cut = join(dir, `cut${n++}`);
    await cp(unzipped, cut, { recursive: true });
    await rm(join(cut, victim));
    await rm(join(cut, victim.replace('.zst', '.manifest.json')));
    await redoSums(cut);
    const r = await verifyWithStandardTools(cut, script);
    assert.notEqual(r.code, 0, r.out);
    assert.match(r.out, why);
  }
});

test('evidence by filter, and refusals', async () => {
  const fixture = await fileTestStore('evidence-filter');
  const { dir, url: store } = fixture;
  const pub = await fixture.publicKeyFile();
  const rec = await fixture.recorder();
  const s = await rec.startSession(sampleHeader());
  for (const e of sqlEvents(1)) await s.append(e);
  await s.end({ reason: 'done' });
  await rec.close();
  const quiet = { out: () => {}, err: () => {} };
  const zip = join(dir, 'b.zip');
  assert.equal(
    await run(['--store', store, 'evidence', '--namespace', 'agents', '-o', zip, '--public-key', pub], quiet),
    0,
  );
  const { stdout } = await exec('unzip', ['-p', zip, 'bundle.json']);
  const m = JSON.parse(stdout);
  assert.equal(m.sessions.length, 1);
  assert.match(m.sessions[0].why, /matched the filter/);
  let err = '';
  const errs = {
    out: () => {},
    err: (t: string) => {
      err += t;
    },
  };
  assert.equal(await run(['--store', store, 'evidence', '-o', zip, '--public-key', pub], errs), 1);
  assert.match(err, /needs session ids or at least one filter/);
  assert.equal(
    await run(['--store', store, 'evidence', '--namespace', 'nope', '-o', zip, '--public-key', pub], errs),
    1,
  );
  assert.match(err, /no sessions match/);
  // A key that did not sign the recording: the bundle is written, verification fails, exit 3.
  const other = join(dir, 'other.pub');
  await writeFile(other, generateSigningKey().publicKeyPem);
  assert.equal(
    await run(['--store', store, 'evidence', s.sessionId, '-o', zip, '--public-key', other], errs),
    3,
  );
});
