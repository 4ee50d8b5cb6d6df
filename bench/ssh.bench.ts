// The ssh gateway against the real OpenSSH sshd of the test environment:
// - scp (SFTP protocol, OpenSSH 9) of one file, direct vs through the sidecar, MiB/s;
// - interactive echo latency (one byte typed in a PTY shell until its echo returns), p50/p99,
//   direct vs through the sidecar;
// - the RSS of this process (the sidecar runs in it) sampled every 100 ms during the transfer, and
//   its CPU time per MiB relayed (both legs' crypto, sftp decoding, hashing, recording).
//   node bench/ssh.bench.ts                 256 MiB, 300 keystrokes
//   node bench/ssh.bench.ts --size=1024     1 GiB (minutes on a shared 2-core machine)
//   --keys=N                                keystrokes per latency run
//   --runs=N                                scp direct/via pairs (ratio: their median)
//   --cipher=NAME                           the agent's scp cipher to the sidecar (scp -c)
//   --download                              scp from the host instead of to it
import { spawn } from 'node:child_process';
import { copyFile, open, rm } from 'node:fs/promises';
import { join } from 'node:path';
import ssh2 from 'ssh2';
import { nativeSshCrypto } from '../sidecar/ssh/crypto.ts';
import { startSshHarness } from '../sidecar/ssh/testing/harness.ts';
import { startEnv } from '../test/env/index.ts';

const arg = (name: string) => process.argv.find((a) => a.startsWith(`--${name}=`))?.split('=')[1];
const sizeMiB = Number(arg('size') ?? 256);
const keys = Number(arg('keys') ?? 300);
const runs = Number(arg('runs') ?? 1);
const cipher = arg('cipher');
const download = process.argv.includes('--download');

/** Of sorted values; the mean of the middle two for an even count. */
function median(sorted: number[]): number {
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

function runScp(args: string[], env: NodeJS.ProcessEnv): Promise<number> {
  return new Promise((resolve, reject) => {
    const started = process.hrtime.bigint();
    const child = spawn('scp', args, { env, stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    child.stderr.on('data', (d: Buffer) => {
      err += d.toString();
    });
    child.on('close', (code) => {
      if (code !== 0) reject(new Error(`scp exited ${code}: ${err}`));
      else resolve(Number(process.hrtime.bigint() - started) / 1e9);
    });
  });
}

async function echoLatency(connect: ssh2.ConnectConfig): Promise<{ p50: number; p99: number }> {
  const client = new ssh2.Client();
  await new Promise<void>((resolve, reject) => {
    client.once('ready', () => resolve()).once('error', reject);
    client.connect(connect);
  });
  client.setNoDelay(true);
  const stream = await new Promise<ssh2.ClientChannel>((resolve, reject) =>
    client.shell({ term: 'dumb', cols: 200, rows: 50 }, (err, s) => (err ? reject(err) : resolve(s))),
  );
  let waiter: ((d: string) => void) | undefined;
  let buffered = '';
  stream.on('data', (d: Buffer) => {
    buffered += d.toString();
    if (waiter) waiter(buffered);
  });
  const until = (needle: string) =>
    new Promise<void>((resolve) => {
      const check = (b: string) => {
        if (b.includes(needle)) {
          waiter = undefined;
          buffered = '';
          resolve();
        }
      };
      waiter = check;
      check(buffered);
    });
  stream.write('cat\n');
  await new Promise((r) => setTimeout(r, 500));
  buffered = '';
  const samples: number[] = [];
  for (let i = 0; i < keys; i++) {
    const ch = String.fromCharCode(97 + (i % 26));
    const started = process.hrtime.bigint();
    const seen = until(ch);
    stream.write(ch);
    await seen;
    samples.push(Number(process.hrtime.bigint() - started) / 1e6);
  }
  stream.write('\x03exit\n');
  client.end();
  samples.sort((a, b) => a - b);
  const pct = (p: number) =>
    Number(samples[Math.min(samples.length - 1, Math.floor((p / 100) * samples.length))]!.toFixed(3));
  return { p50: pct(50), p99: pct(99) };
}

const env = await startEnv(['sshd']);
try {
  const sshd = env.info.sshd!;
  const h = await startSshHarness(sshd);
  try {
    const file = join(h.dir, 'payload.bin');
    const f = await open(file, 'w');
    const chunk = Buffer.alloc(1024 * 1024, 0x5a);
    for (let i = 0; i < sizeMiB; i++) {
      chunk.writeUInt32BE(i, 0);
      await f.write(chunk);
    }
    await f.close();
    const remote = join(sshd.homeDir, 'bench-payload.bin');
    const directArgs = [
      '-i',
      sshd.privateKeyPath,
      '-o',
      'BatchMode=yes',
      '-o',
      'IdentitiesOnly=yes',
      '-o',
      `UserKnownHostsFile=${sshd.knownHostsPath}`,
      '-o',
      'StrictHostKeyChecking=yes',
      '-o',
      'GlobalKnownHostsFile=/dev/null',
      '-P',
      String(sshd.port),
    ];
    // Upload: the local payload to the host. Download: the same file, put on the host first, back.
    const back = join(h.dir, 'payload.back');
    const ends = (user: string) =>
      download
        ? [`${user}@127.0.0.1:bench-payload.bin`, back]
        : [file, `${user}@127.0.0.1:bench-payload.bin`];
    const cleanup = () => (download ? rm(back, { force: true }) : rm(remote, { force: true }));
    if (download) await copyFile(file, remote);
    const o = h.clientOptions();
    const rss: number[] = [];
    const ratios: number[] = [];
    let directSeconds = 0;
    let viaSeconds = 0;
    let viaCpuMs = 0;
    // Direct and via alternate, so each ratio compares two transfers a few seconds apart on a
    // machine whose load changes by the minute; the reported ratio is the median of the runs.
    for (let i = 0; i < runs; i++) {
      const d = await runScp([...directArgs, ...ends(sshd.user)], { PATH: process.env.PATH, HOME: h.dir });
      await cleanup();
      const sampler = setInterval(() => rss.push(process.memoryUsage().rss), 100);
      const cpu = process.cpuUsage();
      const v = await runScp(
        [...o.args, ...(cipher ? ['-c', cipher] : []), '-P', String(h.port), ...ends('agent')],
        o.env,
      );
      clearInterval(sampler);
      const used = process.cpuUsage(cpu);
      viaCpuMs += (used.user + used.system) / 1000;
      await cleanup();
      ratios.push(d / v);
      directSeconds += d;
      viaSeconds += v;
    }
    ratios.sort((a, b) => a - b);
    await rm(remote, { force: true });
    const direct = await echoLatency({
      host: '127.0.0.1',
      port: sshd.port,
      username: sshd.user,
      password: sshd.password,
      hostVerifier: () => true,
    });
    const via = await echoLatency({
      host: '127.0.0.1',
      port: h.port,
      username: 'agent',
      password: h.token,
      hostVerifier: () => true,
    });
    const mib = (b: number) => Math.round(b / 1024 / 1024);
    process.stdout.write(
      `${JSON.stringify({
        bench: 'ssh',
        sizeMiB,
        direction: download ? 'download' : 'upload',
        nativeSshCrypto,
        runs,
        scpDirectMiBps: Number(((sizeMiB * runs) / directSeconds).toFixed(1)),
        scpViaSidecarMiBps: Number(((sizeMiB * runs) / viaSeconds).toFixed(1)),
        ratio: Number(median(ratios).toFixed(2)),
        ratios: ratios.map((r) => Number(r.toFixed(2))),
        sidecarCpuMsPerMiB: Number((viaCpuMs / (sizeMiB * runs)).toFixed(2)),
        rssMiB: {
          first: mib(rss[0] ?? 0),
          max: mib(Math.max(...rss)),
          last: mib(rss.at(-1) ?? 0),
          samples: rss.length,
        },
        echoMs: {
          direct,
          viaSidecar: via,
          addedP50: Number((via.p50 - direct.p50).toFixed(3)),
          addedP99: Number((via.p99 - direct.p99).toFixed(3)),
        },
        keystrokes: keys,
      })}\n`,
    );
  } finally {
    await h.close();
  }
} finally {
  await env.stop();
}
