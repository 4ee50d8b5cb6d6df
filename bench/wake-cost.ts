// What one wake-up from sleep costs this process in CPU time: a loop that only sleeps on a timer
// and wakes. On a microVM this is tens of µs per wake-up (docs/benchmarks.md, "Hot path, sixth
// round"), and it is the price of every thread-pool hand-off and idle-to-busy turn of the sidecar.
// Then what one durable journal-sized write costs (O_DSYNC, as recording/journal.ts opens its file),
// on the main thread and through libuv's thread pool.
//   node bench/wake-cost.ts [--seconds 3] [--intervals 1,2,5,10] [--writes 500] [--dir /tmp]
import { closeSync, constants, openSync, write, writeSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { parseArgs } from 'node:util';

const { values } = parseArgs({
  options: {
    seconds: { type: 'string', default: '3' },
    intervals: { type: 'string', default: '1,2,5,10' },
    writes: { type: 'string', default: '500' },
    dir: { type: 'string', default: '/tmp' },
  },
});
const seconds = Number(values.seconds);
const cpuMicros = (c: NodeJS.CpuUsage) => c.user + c.system;

for (const ms of values.intervals.split(',').map(Number)) {
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  let wakes = 0;
  while (performance.now() - t0 < seconds * 1000) {
    await new Promise((r) => setTimeout(r, ms));
    wakes++;
  }
  const cpu = process.cpuUsage(cpu0);
  process.stdout.write(
    `sleep ${ms} ms: ${wakes} wake-ups, ${(cpuMicros(cpu) / wakes).toFixed(1)} µs CPU per wake-up (user ${(cpu.user / wakes).toFixed(1)}, system ${(cpu.system / wakes).toFixed(1)})\n`,
  );
}

const writes = Number(values.writes);
const dir = await mkdtemp(join(values.dir, 'chaperone-wake-cost-'));
try {
  const fd = openSync(
    join(dir, 'journal'),
    constants.O_WRONLY | constants.O_CREAT | constants.O_DSYNC,
    0o600,
  );
  let position = 0;
  for (const size of [4096, 16384]) {
    const buf = Buffer.alloc(size, 0x78);
    let cpu0 = process.cpuUsage();
    let t0 = performance.now();
    for (let i = 0; i < writes; i++, position += size) writeSync(fd, buf, 0, size, position);
    let cpu = process.cpuUsage(cpu0);
    const syncWall = (performance.now() - t0) / writes;
    const syncCpu = cpuMicros(cpu) / writes;
    cpu0 = process.cpuUsage();
    t0 = performance.now();
    for (let i = 0; i < writes; i++, position += size) {
      await new Promise<void>((resolve, reject) =>
        write(fd, buf, 0, size, position, (err) => (err ? reject(err) : resolve())),
      );
    }
    cpu = process.cpuUsage(cpu0);
    process.stdout.write(
      `O_DSYNC write of ${size / 1024} KiB: main thread ${syncCpu.toFixed(1)} µs CPU (${(syncWall * 1000).toFixed(0)} µs wall), thread pool ${(cpuMicros(cpu) / writes).toFixed(1)} µs CPU (${(((performance.now() - t0) / writes) * 1000).toFixed(0)} µs wall) per write\n`,
    );
  }
  closeSync(fd);
} finally {
  await rm(dir, { recursive: true, force: true });
}
