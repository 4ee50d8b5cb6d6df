// What one wake-up from sleep costs this process in CPU time: a loop that only sleeps on a timer
// and wakes. On a microVM this is tens of µs per wake-up (docs/benchmarks.md, "Hot path, sixth
// round"), and it is the price of every thread-pool hand-off and idle-to-busy turn of the sidecar.
//   node bench/wake-cost.ts [--seconds 3] [--intervals 1,2,5,10]
import { parseArgs } from 'node:util';

const { values } = parseArgs({
  options: { seconds: { type: 'string', default: '3' }, intervals: { type: 'string', default: '1,2,5,10' } },
});
const seconds = Number(values.seconds);
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
    `sleep ${ms} ms: ${wakes} wake-ups, ${((cpu.user + cpu.system) / wakes).toFixed(1)} µs CPU per wake-up (user ${(cpu.user / wakes).toFixed(1)}, system ${(cpu.system / wakes).toFixed(1)})\n`,
  );
}
